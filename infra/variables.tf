variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "us-east-1"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "tally"
}

variable "tags" {
  description = "Extra tags on every resource."
  type        = map(string)
  default     = {}
}

variable "lambda_zip_dir" {
  description = "Directory holding make package's output: <dir>/tally-<function>/bootstrap.zip."
  type        = string
  default     = "../target/lambda"
}

variable "reporting_tz" {
  description = "IANA zone of stored days and months (whole-hour offsets only), e.g. UTC or Asia/Seoul."
  type        = string
  default     = "UTC"
}

variable "ingest_timeout_seconds" {
  description = "Timeout of the ingest function; the queue's visibility timeout is six times this."
  type        = number
  default     = 30
}

variable "rollup_timeout_seconds" {
  description = "Timeout of the rollup function (it stops 30 s early and leaves the rest for the next run)."
  type        = number
  default     = 900
}

variable "rollup_shard_mb" {
  description = "MiB of event files one rollup invocation reads at a time (its memory is about ten times that, above ~150 MiB); a larger hour is split into shards run by rollup_shards."
  type        = number
  default     = 32
  validation {
    condition     = var.rollup_shard_mb > 0
    error_message = "rollup_shard_mb must be above zero."
  }
}

variable "rollup_shard_timeout_seconds" {
  description = "Timeout of the rollup_shards worker (one shard of one hour); the shard queue's visibility timeout is six times this."
  type        = number
  default     = 300
}

variable "rollup_shard_concurrency" {
  description = "Shards computed at once at most (reserved concurrency of rollup_shards, and the shard queue's maximum concurrency; at least 2)."
  type        = number
  default     = 20
  validation {
    condition     = var.rollup_shard_concurrency >= 2
    error_message = "rollup_shard_concurrency must be at least 2 (an SQS event source's least maximum concurrency)."
  }
}

variable "ingest_memory_mb" {
  description = "Memory of the ingest function."
  type        = number
  default     = 512
}

variable "rollup_memory_mb" {
  description = "Memory of the rollup function."
  type        = number
  default     = 2048
}

variable "api_memory_mb" {
  description = "Memory of the api function."
  type        = number
  default     = 256
}

variable "ingest_reserved_concurrency" {
  description = "Reserved concurrency of the ingest function (-1: unreserved)."
  type        = number
  default     = -1
}

variable "api_reserved_concurrency" {
  description = "Reserved concurrency of the api function (-1: unreserved)."
  type        = number
  default     = -1
}

variable "ingest_batch_size" {
  description = "Messages per ingest invocation."
  type        = number
  default     = 100
}

variable "ingest_batching_window_seconds" {
  description = "Longest wait to fill an ingest batch."
  type        = number
  default     = 5
}

variable "ingest_maximum_concurrency" {
  description = "Most concurrent ingest invocations the event source mapping starts (2 to 1000)."
  type        = number
  default     = 10
}

variable "max_receive_count" {
  description = "Deliveries of a message before it moves to the dead-letter queue."
  type        = number
  default     = 5
}

variable "producer_principals" {
  description = "IAM role ARNs or account ids allowed to send events to the queue."
  type        = list(string)
  default     = []
}

variable "rollup_every_minutes" {
  description = "Minutes between rollup runs."
  type        = number
  default     = 10
}

variable "events_ia_after_days" {
  description = "Days before event Parquet moves to Standard-IA."
  type        = number
  default     = 30
}

variable "events_glacier_ir_after_days" {
  description = "Days before event Parquet moves to Glacier Instant Retrieval."
  type        = number
  default     = 90
}

variable "quarantine_expire_days" {
  description = "Days quarantined input is kept."
  type        = number
  default     = 30
}

variable "access_log_bucket" {
  description = "Bucket for S3 server access logs; empty disables them."
  type        = string
  default     = ""
}

variable "dynamodb_deletion_protection" {
  description = "Protect the period table from deletion."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Retention of the functions' and API's log groups, in days."
  type        = number
  default     = 365
}

variable "jwt_issuer" {
  description = "OIDC issuer URL of the admin front end's tokens (e.g. a Cognito user pool URL)."
  type        = string
}

variable "jwt_audience" {
  description = "Accepted audiences (client ids) of the admin front end's tokens."
  type        = list(string)
}

variable "console_oidc_authorize_url" {
  description = "The admin console signs in here (the OIDC provider's authorization endpoint, e.g. https://<domain>.auth.<region>.amazoncognito.com/oauth2/authorize); empty: the console asks for a token."
  type        = string
  default     = ""
}

variable "console_oidc_token_url" {
  description = "The OIDC provider's token endpoint (e.g. https://<domain>.auth.<region>.amazoncognito.com/oauth2/token)."
  type        = string
  default     = ""
}

variable "console_oidc_client_id" {
  description = "The console's public client id at the provider (no secret; one of jwt_audience). Its callback URL is the API's URL with a trailing slash."
  type        = string
  default     = ""
}

variable "cors_origin" {
  description = "Origin of the admin front end, e.g. https://admin.example.com."
  type        = string
}

variable "api_throttle_rate" {
  description = "Steady requests per second allowed on the API."
  type        = number
  default     = 50
}

variable "api_throttle_burst" {
  description = "Burst of requests allowed on the API."
  type        = number
  default     = 100
}

variable "alarm_email" {
  description = "Address subscribed to the alarm topic; empty subscribes nobody."
  type        = string
  default     = ""
}

variable "oldest_message_alarm_seconds" {
  description = "Alarm when the oldest queued event is older than this."
  type        = number
  default     = 900
}

variable "rollup_backlog_alarm_runs" {
  description = "Consecutive rollup runs that must leave touched hours waiting (metric tally/TouchedHoursWaiting) before the rollup-falling-behind alarm fires."
  type        = number
  default     = 3

  validation {
    condition     = var.rollup_backlog_alarm_runs >= 1
    error_message = "rollup_backlog_alarm_runs must be at least 1."
  }
}
