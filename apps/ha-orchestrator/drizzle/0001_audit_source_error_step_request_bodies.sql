ALTER TABLE "api_request_log" ADD COLUMN "request_body" jsonb;--> statement-breakpoint
ALTER TABLE "api_request_log" ADD COLUMN "response_body" jsonb;--> statement-breakpoint
ALTER TABLE "upgrade_history" ADD COLUMN "source" text DEFAULT 'orchestrator' NOT NULL;--> statement-breakpoint
ALTER TABLE "upgrade_task" ADD COLUMN "error_step" text;