CREATE TABLE "api_request_log" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "api_request_log_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"at" timestamp with time zone NOT NULL,
	"request_id" text NOT NULL,
	"method" text NOT NULL,
	"route" text NOT NULL,
	"path" text NOT NULL,
	"status" smallint NOT NULL,
	"duration_ms" integer NOT NULL,
	"client_ip" text NOT NULL,
	"caller" text,
	"user_agent" text
);
--> statement-breakpoint
CREATE TABLE "backup_record" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "backup_record_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"task_id" uuid NOT NULL,
	"node_id" text NOT NULL,
	"backup_id" text NOT NULL,
	"dir" text NOT NULL,
	"files" jsonb NOT NULL,
	"verified" boolean NOT NULL,
	"at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "config_sync_record" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "config_sync_record_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"task_id" uuid NOT NULL,
	"digests" jsonb NOT NULL,
	"in_sync" boolean NOT NULL,
	"at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "health_check_record" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "health_check_record_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"task_id" uuid NOT NULL,
	"node_id" text NOT NULL,
	"ok" boolean NOT NULL,
	"details" jsonb NOT NULL,
	"duration_ms" integer NOT NULL,
	"at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rsync_status_record" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "rsync_status_record_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"task_id" uuid NOT NULL,
	"node_id" text NOT NULL,
	"action" text NOT NULL,
	"paused" boolean NOT NULL,
	"ok" boolean NOT NULL,
	"message" text NOT NULL,
	"at" timestamp with time zone NOT NULL,
	CONSTRAINT "rsync_status_record_action_check" CHECK ("rsync_status_record"."action" in ('pause', 'resume', 'status'))
);
--> statement-breakpoint
CREATE TABLE "upgrade_config" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"upgrade_timeout_ms" integer,
	"vip_switch_timeout_ms" integer,
	"vip_switch_retries" integer,
	"health_check_timeout_ms" integer,
	"health_retries" integer,
	"health_retry_interval_ms" integer,
	"healthy_checks_required" integer,
	"backup_retention" integer,
	"replication_timeout_ms" integer,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "upgrade_config_single_row" CHECK ("upgrade_config"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "upgrade_history" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "upgrade_history_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"task_id" uuid NOT NULL,
	"level" text NOT NULL,
	"message" text NOT NULL,
	"from_state" text,
	"to_state" text,
	"at" timestamp with time zone NOT NULL,
	"details" jsonb,
	CONSTRAINT "upgrade_history_level_check" CHECK ("upgrade_history"."level" in ('INFO', 'WARNING', 'ERROR'))
);
--> statement-breakpoint
CREATE TABLE "upgrade_progress" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "upgrade_progress_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"task_id" uuid NOT NULL,
	"step" text NOT NULL,
	"node_id" text,
	"status" text NOT NULL,
	"message" text NOT NULL,
	"percent" smallint NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"duration_ms" integer,
	CONSTRAINT "upgrade_progress_status_check" CHECK ("upgrade_progress"."status" in ('started', 'succeeded', 'failed', 'skipped'))
);
--> statement-breakpoint
CREATE TABLE "upgrade_task" (
	"id" uuid PRIMARY KEY NOT NULL,
	"state" text NOT NULL,
	"from_version" text,
	"to_version" text NOT NULL,
	"package_sha256" text NOT NULL,
	"primary_before" text,
	"primary_after" text,
	"percent" smallint DEFAULT 0 NOT NULL,
	"current_step" text,
	"last_message" text,
	"error_code" text,
	"error_message" text,
	"downtime_ms" integer,
	"created_at" timestamp with time zone NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone,
	"cancel_requested_at" timestamp with time zone,
	"cancel_reason" text,
	"requested_by" text,
	CONSTRAINT "upgrade_task_state_check" CHECK (state in ('IDLE', 'PREPARE', 'BACKUP', 'UPGRADE_BACKUP', 'VIP_SWITCH', 'UPGRADE_MASTER', 'VERIFY', 'COMPLETE', 'ROLLBACK', 'CANCELLED', 'FAILED', 'TIMEOUT', 'UNREACHABLE')),
	CONSTRAINT "upgrade_task_percent_check" CHECK ("upgrade_task"."percent" between 0 and 100),
	CONSTRAINT "upgrade_task_error_check" CHECK (("upgrade_task"."error_code" is null) = ("upgrade_task"."error_message" is null))
);
--> statement-breakpoint
CREATE TABLE "vip_switch_record" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "vip_switch_record_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"task_id" uuid NOT NULL,
	"from_node" text NOT NULL,
	"to_node" text NOT NULL,
	"attempt" integer NOT NULL,
	"ok" boolean NOT NULL,
	"duration_ms" integer NOT NULL,
	"message" text NOT NULL,
	"at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "backup_record" ADD CONSTRAINT "backup_record_task_id_upgrade_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."upgrade_task"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "config_sync_record" ADD CONSTRAINT "config_sync_record_task_id_upgrade_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."upgrade_task"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "health_check_record" ADD CONSTRAINT "health_check_record_task_id_upgrade_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."upgrade_task"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "rsync_status_record" ADD CONSTRAINT "rsync_status_record_task_id_upgrade_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."upgrade_task"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "upgrade_history" ADD CONSTRAINT "upgrade_history_task_id_upgrade_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."upgrade_task"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "upgrade_progress" ADD CONSTRAINT "upgrade_progress_task_id_upgrade_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."upgrade_task"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "vip_switch_record" ADD CONSTRAINT "vip_switch_record_task_id_upgrade_task_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."upgrade_task"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "api_request_log_at_idx" ON "api_request_log" USING btree ("at");--> statement-breakpoint
CREATE INDEX "backup_record_task_idx" ON "backup_record" USING btree ("task_id","id");--> statement-breakpoint
CREATE INDEX "config_sync_record_task_idx" ON "config_sync_record" USING btree ("task_id","id");--> statement-breakpoint
CREATE INDEX "health_check_record_task_idx" ON "health_check_record" USING btree ("task_id","id");--> statement-breakpoint
CREATE INDEX "rsync_status_record_task_idx" ON "rsync_status_record" USING btree ("task_id","id");--> statement-breakpoint
CREATE INDEX "upgrade_history_task_at_idx" ON "upgrade_history" USING btree ("task_id","at","id");--> statement-breakpoint
CREATE INDEX "upgrade_history_task_level_at_idx" ON "upgrade_history" USING btree ("task_id","level","at","id");--> statement-breakpoint
CREATE INDEX "upgrade_progress_task_idx" ON "upgrade_progress" USING btree ("task_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "upgrade_task_single_active" ON "upgrade_task" USING btree ((true)) WHERE state not in ('COMPLETE', 'CANCELLED', 'FAILED', 'TIMEOUT', 'UNREACHABLE');--> statement-breakpoint
CREATE INDEX "upgrade_task_created_at_idx" ON "upgrade_task" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "vip_switch_record_task_idx" ON "vip_switch_record" USING btree ("task_id","id");