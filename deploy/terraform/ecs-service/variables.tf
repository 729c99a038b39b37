variable "name" {
  description = "Name of the service, and prefix of the roles, the log group and the task family."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,40}$", var.name))
    error_message = "name: 1 to 40 letters, digits, '-' or '_'."
  }
}

variable "image" {
  description = "The shardline image (built from the repository's Dockerfile with the extras the pipeline needs), by digest preferably: ACCOUNT.dkr.ecr.REGION.amazonaws.com/shardline@sha256:..."
  type        = string
}

variable "cluster_arn" {
  description = "ARN of the ECS cluster the service runs in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the tasks (they need a route to DynamoDB: a NAT gateway or a DynamoDB gateway endpoint, plus the sinks' endpoints)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the tasks. shardline needs egress on 443 only (and to its sinks); ingress only on the metrics port, from Prometheus."
  type        = list(string)
}

variable "pipeline_ssm_parameter_arn" {
  description = "ARN of an SSM Parameter Store parameter (String or SecureString) holding the pipeline file (TOML). Give this or pipeline_toml."
  type        = string
  default     = null
}

variable "pipeline_toml" {
  description = "The pipeline file (TOML) itself, passed as an environment variable. Give this or pipeline_ssm_parameter_arn. It must hold no secrets: use ${NAME} references to the secrets below."
  type        = string
  default     = null
}

variable "secrets" {
  description = "Environment variables read from Secrets Manager (or SSM) at task start: name => ARN (a secret, or SECRET_ARN:json-key:: for one key of a JSON secret). The pipeline file refers to them as ${NAME}, and libpq reads PGPASSWORD itself."
  type        = map(string)
  default     = {}
}

variable "environment" {
  description = "Plain environment variables of the container (no secrets)."
  type        = map(string)
  default     = {}
}

variable "task_policy_json" {
  description = "The task role's policy: the output of `shardline iam-policy --config pipeline.toml`. The placeholders $${AWS::Region}, $${AWS::AccountId} and $${AWS::Partition} it may contain are filled in from the provider."
  type        = string

  validation {
    condition     = can(jsondecode(var.task_policy_json).Statement)
    error_message = "task_policy_json must be the JSON policy document printed by `shardline iam-policy`."
  }
}

variable "secrets_kms_key_arns" {
  description = "Customer-managed KMS keys that encrypt the secrets or the SecureString parameter (the execution role may decrypt with them)."
  type        = list(string)
  default     = []
}

variable "desired_count" {
  description = "Workers to run. Useful up to the stream's number of open shards; see docs/deploy.md for sizing."
  type        = number
  default     = 2
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU). One worker uses about one core at ~25,000 records/s of 1 KB items (docs/performance.md)."
  type        = number
  default     = 1024
}

variable "memory" {
  description = "Task memory in MiB. A worker's RSS stays under 100 MB for 1000 idle shards or a bounded backlog (docs/performance.md); the rest is for the processor or sinks."
  type        = number
  default     = 2048
}

variable "shutdown_grace_seconds" {
  description = "shardline's --shutdown-grace: how long in-flight batches may finish on SIGTERM before the leases are released anyway. The task's stopTimeout is this plus stop_margin_seconds."
  type        = number
  default     = 5

  validation {
    condition     = var.shutdown_grace_seconds >= 1 && var.shutdown_grace_seconds <= 90
    error_message = "shutdown_grace_seconds must be between 1 and 90 (Fargate's stopTimeout is at most 120 s)."
  }
}

variable "stop_margin_seconds" {
  description = "Seconds on top of the shutdown grace before ECS sends SIGKILL (the leases are released after the grace; this covers the release and the process's exit)."
  type        = number
  default     = 25

  validation {
    condition     = var.stop_margin_seconds >= 10 && var.stop_margin_seconds <= 30
    error_message = "stop_margin_seconds must be between 10 and 30."
  }
}

variable "metrics_port" {
  description = "Port of /metrics, /health/live and /health/ready in the task."
  type        = number
  default     = 9100
}

variable "extra_args" {
  description = "More `shardline run` arguments (e.g. [\"--max-leases\", \"200\"])."
  type        = list(string)
  default     = []
}

variable "log_retention_days" {
  description = "Days the log group keeps the workers' JSON log lines."
  type        = number
  default     = 365
}

variable "log_kms_key_arn" {
  description = "KMS key encrypting the log group (its key policy must allow the CloudWatch Logs service principal). null: CloudWatch's own encryption."
  type        = string
  default     = null
}

variable "autoscaling" {
  description = "Optional target tracking on the workers' iterator age. shardline serves it to Prometheus as shardline_iterator_age_milliseconds; publish its maximum to CloudWatch (the CloudWatch agent's Prometheus scraping or ADOT) under metric_namespace/metric_name/dimensions. max_count above the stream's open shards adds idle workers."
  type = object({
    min_count              = number
    max_count              = number
    target_iterator_age_ms = number
    metric_namespace       = string
    metric_name            = string
    dimensions             = map(string)
    scale_in_cooldown      = optional(number, 600)
    scale_out_cooldown     = optional(number, 120)
  })
  default = null
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
