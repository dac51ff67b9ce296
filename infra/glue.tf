# Raw events for SQL at any scale: a Glue table with partition projection, queried from Athena.
resource "aws_glue_catalog_database" "events" {
  name = replace("${var.name}_events", "-", "_")
}

resource "aws_glue_catalog_table" "events" {
  database_name = aws_glue_catalog_database.events.name
  name          = "events"
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    "classification"            = "parquet"
    "projection.enabled"        = "true"
    "projection.date.type"      = "date"
    "projection.date.format"    = "yyyy-MM-dd"
    "projection.date.range"     = "2020-01-01,NOW"
    "projection.date.interval"  = "1"
    "projection.date.interval.unit" = "DAYS"
    "projection.hour.type"      = "integer"
    "projection.hour.range"     = "0,23"
    "projection.hour.digits"    = "2"
    "storage.location.template" = "s3://${aws_s3_bucket.events.bucket}/events/date=$${date}/hour=$${hour}/"
  }

  partition_keys {
    name = "date"
    type = "string"
  }
  partition_keys {
    name = "hour"
    type = "string"
  }

  storage_descriptor {
    location      = "s3://${aws_s3_bucket.events.bucket}/events/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = [
        ["event_id", "string"], ["event_type", "string"], ["occurred_at", "timestamp"], ["received_at", "timestamp"],
        ["user_id", "string"], ["session_id", "string"], ["correlation_id", "string"], ["service", "string"],
        ["country", "string"], ["browser", "string"], ["device", "string"], ["item_id", "string"],
        ["content_id", "string"], ["currency", "string"], ["price", "decimal(18,6)"], ["quantity", "bigint"],
        ["attributes", "string"],
      ]
      content {
        name = columns.value[0]
        type = columns.value[1]
      }
    }
  }
}

resource "aws_athena_workgroup" "events" {
  name = "${var.name}-events"

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true

    result_configuration {
      output_location = "s3://${aws_s3_bucket.events.bucket}/athena-results/"
      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = aws_kms_key.tally.arn
      }
    }
  }
}
