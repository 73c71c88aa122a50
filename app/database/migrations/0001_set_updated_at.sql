-- A trigger function for tables that keep an updated_at column current:
--   CREATE TRIGGER t_updated_at BEFORE UPDATE ON t
--       FOR EACH ROW EXECUTE FUNCTION datalayer_set_updated_at();
CREATE OR REPLACE FUNCTION datalayer_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
