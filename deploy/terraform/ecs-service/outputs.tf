output "service_name" {
  description = "Name of the ECS service."
  value       = aws_ecs_service.this.name
}

output "service_id" {
  description = "ARN of the ECS service."
  value       = aws_ecs_service.this.id
}

output "task_definition_arn" {
  description = "ARN of the task definition (with its revision)."
  value       = aws_ecs_task_definition.this.arn
}

output "task_role_arn" {
  description = "ARN of the task role (the pipeline's policy); trust it in the sinks' resource policies if they have any."
  value       = aws_iam_role.task.arn
}

output "execution_role_arn" {
  description = "ARN of the execution role (image pull, logs, secrets)."
  value       = aws_iam_role.execution.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the workers' JSON log lines."
  value       = aws_cloudwatch_log_group.this.name
}

output "stop_timeout" {
  description = "The container's stopTimeout in seconds (shutdown grace + margin)."
  value       = local.stop_timeout
}
