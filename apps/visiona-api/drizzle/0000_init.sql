CREATE TABLE "devices" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"owner_id" uuid NOT NULL,
	"serial" text NOT NULL,
	"name" text NOT NULL,
	"pairing_status" text NOT NULL,
	"online_status" text DEFAULT 'offline' NOT NULL,
	"agent_last_seen_at" timestamp with time zone,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	"deleted_at" timestamp with time zone,
	CONSTRAINT "devices_pairing_status_check" CHECK ("devices"."pairing_status" in ('pending', 'paired', 'unpaired')),
	CONSTRAINT "devices_online_status_check" CHECK ("devices"."online_status" in ('online', 'offline')),
	CONSTRAINT "devices_unpaired_deleted_check" CHECK (("devices"."pairing_status" = 'unpaired') = ("devices"."deleted_at" is not null))
);
--> statement-breakpoint
CREATE TABLE "models" (
	"id" uuid PRIMARY KEY NOT NULL,
	"owner_id" uuid NOT NULL,
	"name" text NOT NULL,
	"chip" text NOT NULL,
	"source" text NOT NULL,
	"labels" text[] DEFAULT '{}'::text[] NOT NULL,
	"input_shape" integer[] NOT NULL,
	"faa_object_key" text,
	"created_at" timestamp with time zone NOT NULL,
	"updated_at" timestamp with time zone NOT NULL,
	"deleted_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "pairing_tokens" (
	"token_hash" text PRIMARY KEY NOT NULL,
	"owner_id" uuid NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"used_at" timestamp with time zone,
	CONSTRAINT "pairing_tokens_hash_check" CHECK ("pairing_tokens"."token_hash" ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
CREATE TABLE "session_tokens" (
	"token_hash" text PRIMARY KEY NOT NULL,
	"device_id" uuid NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone,
	CONSTRAINT "session_tokens_hash_check" CHECK ("session_tokens"."token_hash" ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
CREATE TABLE "users" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"email" text NOT NULL,
	"password_hash" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "devices" ADD CONSTRAINT "devices_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "models" ADD CONSTRAINT "models_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pairing_tokens" ADD CONSTRAINT "pairing_tokens_owner_id_users_id_fk" FOREIGN KEY ("owner_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "session_tokens" ADD CONSTRAINT "session_tokens_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "devices_serial_live" ON "devices" USING btree ("serial") WHERE "devices"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "devices_live_owner_idx" ON "devices" USING btree ("owner_id","created_at","id") WHERE "devices"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "models_live_owner_idx" ON "models" USING btree ("owner_id","created_at","id") WHERE "models"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "models_live_chip_source_idx" ON "models" USING btree ("chip","source") WHERE "models"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "session_tokens_device_idx" ON "session_tokens" USING btree ("device_id");--> statement-breakpoint
CREATE UNIQUE INDEX "users_email_lower_unique" ON "users" USING btree (lower("email"));