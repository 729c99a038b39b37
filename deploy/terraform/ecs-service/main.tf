# An ECS Fargate service running one shardline pipeline. Inputs: variables.tf, outputs:
# outputs.tf, usage: README.md. Checked in `make test` (tests/deploy): parsed with
# python-hcl2 and scanned with checkov, with no failed check.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  pipeline_path = "/tmp/shardline/pipeline.toml"
  stop_timeout  = var.shutdown_grace_seconds + var.stop_margin_seconds

  # `shardline iam-policy` writes CloudFormation-style placeholders when it cannot know
  # the region, account or partition offline; fill them from the provider.
  task_policy = replace(replace(replace(var.task_policy_json,
    "$${AWS::AccountId}", data.aws_caller_identity.current.account_id),
    "$${AWS::Region}", data.aws_region.current.name),
  "$${AWS::Partition}", data.aws_partition.current.partition)

  # The pipeline file reaches the container as SHARDLINE_PIPELINE_TOML (a plain variable,
  # or an SSM parameter through `secrets`) and is written to a file before shardline
  # starts; `exec` makes shardline the process that receives SIGTERM.
  command = join(" ", concat(
    [
      "umask 077 && mkdir -p /tmp/shardline",
      "&& printf '%s' \"$SHARDLINE_PIPELINE_TOML\" > ${local.pipeline_path}",
      "&& exec shardline run --config ${local.pipeline_path}",
      "--metrics-host 0.0.0.0 --metrics-port ${var.metrics_port}",
      "--shutdown-grace ${var.shutdown_grace_seconds} --log-format json",
    ],
    [for arg in var.extra_args : format("'%s'", replace(arg, "'", "'\\''"))],
  ))

  pipeline_secret = var.pipeline_ssm_parameter_arn == null ? [] : [
    { name = "SHARDLINE_PIPELINE_TOML", valueFrom = var.pipeline_ssm_parameter_arn }
  ]
  pipeline_env = var.pipeline_toml == null ? [] : [
    { name = "SHARDLINE_PIPELINE_TOML", value = var.pipeline_toml }
  ]

  secret_arns = [for arn in values(var.secrets) : split(":", arn)[2] == "secretsmanager" ? join(":", slice(split(":", arn), 0, 7)) : arn]
  read_arns   = distinct(compact(concat(local.secret_arns, [var.pipeline_ssm_parameter_arn])))
}

# --- logs ------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

# --- roles -----------------------------------------------------------------------------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

# The task role: what shardline itself may call (the pipeline's least-privilege policy).
resource "aws_iam_role" "task" {
  name               = "${var.name}-task"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "task" {
  name   = "shardline-pipeline"
  role   = aws_iam_role.task.id
  policy = local.task_policy
}

# The execution role: what ECS needs to start the task (pull, logs, secrets).
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  count = length(local.read_arns) > 0 ? 1 : 0

  dynamic "statement" {
    for_each = [for arn in local.read_arns : arn if split(":", arn)[2] == "secretsmanager"]
    content {
      actions   = ["secretsmanager:GetSecretValue"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = [for arn in local.read_arns : arn if split(":", arn)[2] == "ssm"]
    content {
      actions   = ["ssm:GetParameters"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = length(var.secrets_kms_key_arns) > 0 ? [1] : []
    content {
      actions   = ["kms:Decrypt"]
      resources = var.secrets_kms_key_arns
    }
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  count  = length(local.read_arns) > 0 ? 1 : 0
  name   = "read-pipeline-and-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets[0].json
}

# --- the task --------------------------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  task_role_arn            = aws_iam_role.task.arn
  execution_role_arn       = aws_iam_role.execution.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  # Scratch space for the pipeline file: the root filesystem is read-only.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name                   = "shardline"
      image                  = var.image
      essential              = true
      entryPoint             = ["/bin/sh", "-c"]
      command                = [local.command]
      readonlyRootFilesystem = true
      user                   = "10001:10001"
      # Above --shutdown-grace: SIGTERM, in-flight batches finish, leases are released,
      # and only then would ECS send SIGKILL.
      stopTimeout = local.stop_timeout
      linuxParameters = {
        initProcessEnabled = true
        capabilities       = { drop = ["ALL"] }
      }
      portMappings = [{ containerPort = var.metrics_port, protocol = "tcp", name = "metrics" }]
      mountPoints  = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      environment = concat(
        local.pipeline_env,
        [for k, v in var.environment : { name = k, value = v }],
      )
      secrets = concat(
        local.pipeline_secret,
        [for k, arn in var.secrets : { name = k, valueFrom = arn }],
      )
      healthCheck = {
        command = ["CMD", "python", "-c",
        "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${var.metrics_port}/health/live', timeout=4)"]
        interval    = 15
        timeout     = 5
        retries     = 3
        startPeriod = 30
      }
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = data.aws_region.current.name
          awslogs-stream-prefix = "shardline"
        }
      }
    }
  ])

  lifecycle {
    precondition {
      condition     = (var.pipeline_ssm_parameter_arn == null) != (var.pipeline_toml == null)
      error_message = "Give exactly one of pipeline_ssm_parameter_arn and pipeline_toml."
    }
  }

  tags = var.tags
}

# --- the service -----------------------------------------------------------------------------

resource "aws_ecs_service" "this" {
  name             = var.name
  cluster          = var.cluster_arn
  task_definition  = aws_ecs_task_definition.this.arn
  desired_count    = var.desired_count
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  # Rolling deploys start the new workers before stopping the old ones; each old one
  # hands its shards over on SIGTERM (about 1 s in docs/performance.md).
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = false
  }

  lifecycle {
    # With autoscaling on, the scaling policy owns the count.
    ignore_changes = [desired_count]
  }

  tags = var.tags
}

# --- optional autoscaling on the iterator age ------------------------------------------------

resource "aws_appautoscaling_target" "this" {
  count              = var.autoscaling == null ? 0 : 1
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${element(split("/", var.cluster_arn), 1)}/${aws_ecs_service.this.name}"
  min_capacity       = var.autoscaling.min_count
  max_capacity       = var.autoscaling.max_count
}

resource "aws_appautoscaling_policy" "iterator_age" {
  count              = var.autoscaling == null ? 0 : 1
  name               = "${var.name}-iterator-age"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.this[0].service_namespace
  scalable_dimension = aws_appautoscaling_target.this[0].scalable_dimension
  resource_id        = aws_appautoscaling_target.this[0].resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.autoscaling.target_iterator_age_ms
    scale_in_cooldown  = var.autoscaling.scale_in_cooldown
    scale_out_cooldown = var.autoscaling.scale_out_cooldown

    customized_metric_specification {
      namespace   = var.autoscaling.metric_namespace
      metric_name = var.autoscaling.metric_name
      statistic   = "Maximum"

      dynamic "dimensions" {
        for_each = var.autoscaling.dimensions
        content {
          name  = dimensions.key
          value = dimensions.value
        }
      }
    }
  }
}
