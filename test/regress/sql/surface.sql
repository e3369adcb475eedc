--
-- The SQL surface of the extension: every object it installs, and the signature, volatility and
-- strictness of every function. A change here is a change of the interface.
--
\set VERBOSITY default
-- (The extension is normally created by pg_regress --load-extension; this makes the file self-contained.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_trickle;
RESET client_min_messages;
-- Names below are shown schema-qualified whatever the session's search_path would otherwise be.
SET search_path = public;
SELECT extname, extnamespace::regnamespace AS schema, extrelocatable
FROM pg_extension WHERE extname = 'pg_trickle';
SELECT object FROM (
	SELECT pg_describe_object(d.classid, d.objid, 0) AS object
	FROM pg_depend d
	WHERE d.refclassid = 'pg_extension'::regclass
	  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_trickle')
	  AND d.deptype = 'e') o
ORDER BY object COLLATE "C";
SELECT p.proname, pg_get_function_arguments(p.oid) AS arguments, pg_get_function_result(p.oid) AS result,
       p.provolatile AS volatility, p.proisstrict AS strict, p.proparallel AS parallel,
       l.lanname AS language, p.prosecdef AS security_definer
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
WHERE p.pronamespace = 'pgtrickle'::regnamespace
ORDER BY p.proname COLLATE "C";
-- Tables whose contents pg_dump keeps (extension configuration tables).
SELECT config_table FROM (
	SELECT unnest(extconfig)::regclass::text AS config_table FROM pg_extension WHERE extname = 'pg_trickle') c
ORDER BY config_table COLLATE "C";
-- The schemas: pgtrickle_changes (the change buffers) is closed to PUBLIC.
SELECT nspname, has_schema_privilege('public', oid, 'USAGE') AS public_usage
FROM pg_namespace WHERE nspname IN ('pgtrickle', 'pgtrickle_changes') ORDER BY 1;
-- The settings (their values in this cluster are not part of the interface, except the next one).
SELECT name, unit, context, vartype, min_val, max_val, boot_val
FROM pg_settings WHERE name LIKE 'pg\_trickle.%' ORDER BY name COLLATE "C";
-- The tests refresh explicitly and check each outcome, so the background scheduler must be off
-- (test/regress/regress.conf; set it in any cluster the suite runs against with installcheck).
SHOW pg_trickle.enabled;
