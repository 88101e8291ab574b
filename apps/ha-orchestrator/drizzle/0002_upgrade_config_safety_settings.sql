ALTER TABLE "upgrade_config" ADD COLUMN "replication_max_lag_bytes" bigint;--> statement-breakpoint
ALTER TABLE "upgrade_config" ADD COLUMN "replication_max_lag_ms" bigint;--> statement-breakpoint
ALTER TABLE "upgrade_config" ADD COLUMN "backup_space_margin_bytes" bigint;--> statement-breakpoint
ALTER TABLE "upgrade_config" ADD COLUMN "database_switchover" boolean;