-- Export options of a job beyond its format: CSV profile and fields, time
-- zone, redaction (JSON). Existing jobs keep NULL: the defaults, redaction
-- on.
ALTER TABLE export_jobs ADD COLUMN options TEXT CHECK (options IS NULL OR json_valid(options));
