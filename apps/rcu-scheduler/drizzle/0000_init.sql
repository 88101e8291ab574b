CREATE TABLE "upgrade_log" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "upgrade_log_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"start_time" timestamp with time zone NOT NULL,
	"roomtype_id" integer NOT NULL,
	"host_str" text NOT NULL,
	"filename" text NOT NULL,
	"status" text NOT NULL,
	"end_time" timestamp with time zone NOT NULL,
	"file_type" integer NOT NULL,
	"config_version" text,
	"firmware_version" text,
	"uuid" text,
	"round_id" uuid NOT NULL,
	"detail" text,
	CONSTRAINT "upgrade_log_status_check" CHECK ("upgrade_log"."status" in ('completed', 'failed', 'timeout'))
);
--> statement-breakpoint
CREATE TABLE "upgrade_round" (
	"id" uuid PRIMARY KEY NOT NULL,
	"slot" timestamp with time zone,
	"trigger" text NOT NULL,
	"filename" text NOT NULL,
	"file_type" integer NOT NULL,
	"rotation_index_after" integer NOT NULL,
	"rotation_used_after" integer NOT NULL,
	"status" text DEFAULT 'running' NOT NULL,
	"started_at" timestamp with time zone NOT NULL,
	"finished_at" timestamp with time zone,
	CONSTRAINT "upgrade_round_status_check" CHECK ("upgrade_round"."status" in ('running', 'finished')),
	CONSTRAINT "upgrade_round_trigger_check" CHECK ("upgrade_round"."trigger" in ('schedule', 'manual', 'recovery')),
	CONSTRAINT "upgrade_round_finished_at_check" CHECK (("upgrade_round"."status" = 'finished') = ("upgrade_round"."finished_at" is not null))
);
--> statement-breakpoint
CREATE TABLE "upgrade_round_group" (
	"round_id" uuid NOT NULL,
	"roomtype_id" integer NOT NULL,
	"hosts" text[] NOT NULL,
	"uuid" text,
	"trigger_error" text,
	CONSTRAINT "upgrade_round_group_pk" PRIMARY KEY("round_id","roomtype_id")
);
--> statement-breakpoint
CREATE TABLE "upgrade_state" (
	"id" smallint PRIMARY KEY DEFAULT 1 NOT NULL,
	"rotation_index" integer NOT NULL,
	"rotation_used" integer NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "upgrade_state_single_row" CHECK ("upgrade_state"."id" = 1)
);
--> statement-breakpoint
ALTER TABLE "upgrade_log" ADD CONSTRAINT "upgrade_log_round_id_upgrade_round_id_fk" FOREIGN KEY ("round_id") REFERENCES "public"."upgrade_round"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "upgrade_round_group" ADD CONSTRAINT "upgrade_round_group_round_id_upgrade_round_id_fk" FOREIGN KEY ("round_id") REFERENCES "public"."upgrade_round"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "upgrade_log_round_host_unique" ON "upgrade_log" USING btree ("round_id","roomtype_id","host_str");--> statement-breakpoint
CREATE INDEX "upgrade_log_start_time_idx" ON "upgrade_log" USING btree ("start_time");--> statement-breakpoint
CREATE INDEX "upgrade_log_filename_start_time_idx" ON "upgrade_log" USING btree ("filename","start_time");--> statement-breakpoint
CREATE INDEX "upgrade_log_host_start_time_idx" ON "upgrade_log" USING btree ("host_str","start_time");--> statement-breakpoint
CREATE UNIQUE INDEX "upgrade_round_slot_unique" ON "upgrade_round" USING btree ("slot");--> statement-breakpoint
CREATE INDEX "upgrade_round_started_at_idx" ON "upgrade_round" USING btree ("started_at","id");--> statement-breakpoint
CREATE INDEX "upgrade_round_running_idx" ON "upgrade_round" USING btree ("started_at") WHERE "upgrade_round"."status" = 'running';--> statement-breakpoint
CREATE INDEX "upgrade_round_group_uuid_idx" ON "upgrade_round_group" USING btree ("uuid");