#include "guc.hpp"

#include "pg/postgres.hpp"

extern "C" {
#include "utils/guc.h"
}

namespace pgtrickle::guc {

int min_schedule_seconds = 1;
double differential_max_change_ratio = 0.15;
bool adaptive_refresh = true;
int large_window_rows = 1000;
bool generic_delta_plans = true;
int delta_variant = kVariantAuto;
bool scheduler_enabled = true;
int scheduler_interval_ms = 1000;
int max_consecutive_errors = 3;
int history_retention_days = 7;
int default_schedule_seconds = 1;
int cdc_mode = kCdcAuto;
int wal_transition_timeout = 300;
int slot_lag_warning_threshold_mb = 100;
int slot_lag_critical_threshold_mb = 1024;
bool direct_capture = true;

namespace {
const struct config_enum_entry kDeltaVariantOptions[] = {
    {"auto", kVariantAuto, false}, {"default", kVariantDefault, false}, {"large", kVariantLarge, false},
    {nullptr, 0, false}};
const struct config_enum_entry kCdcModeOptions[] = {
    {"auto", kCdcAuto, false}, {"trigger", kCdcTrigger, false}, {"wal", kCdcWal, false}, {nullptr, 0, false}};
} // namespace

void
Register() {
	DefineCustomIntVariable("pg_trickle.min_schedule_seconds",
	                        "Shortest duration schedule a stream table may have, in seconds.", nullptr,
	                        &min_schedule_seconds, 1, 1, 86400, PGC_SUSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
	DefineCustomRealVariable("pg_trickle.differential_max_change_ratio",
	                         "Fraction of a source's rows changed since the last refresh above which a DIFFERENTIAL "
	                         "stream table is refreshed FULL instead (0 = never).",
	                         nullptr, &differential_max_change_ratio, 0.15, 0.0, 1.0, PGC_USERSET, 0, nullptr, nullptr,
	                         nullptr);
	DefineCustomBoolVariable("pg_trickle.adaptive_refresh",
	                         "Whether AUTO stream tables recompute (FULL) instead of applying the delta when the "
	                         "delta is known to cost more.",
	                         "Known from the last DIFFERENTIAL and FULL refresh times; see "
	                         "pgt_stream_tables.last_full_ms and last_differential_ms.",
	                         &adaptive_refresh, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("pg_trickle.large_window_rows",
	                        "Changed rows from which a refresh runs the delta variant for large change windows.",
	                        "Only joins of keyed tables have one (explain_st: delta_query_large_window).",
	                        &large_window_rows, 1000, 1, INT_MAX, PGC_USERSET, 0, nullptr, nullptr, nullptr);
	DefineCustomEnumVariable("pg_trickle.delta_variant",
	                         "Which variant of the delta a DIFFERENTIAL refresh runs: auto (by the window's size, "
	                         "see pg_trickle.large_window_rows), default, or large.",
	                         "Only stream tables whose explain_st shows delta_query_large_window have two. A "
	                         "diagnosis and testing knob.",
	                         &delta_variant, kVariantAuto, kDeltaVariantOptions, PGC_USERSET, 0, nullptr, nullptr,
	                         nullptr);
	DefineCustomBoolVariable("pg_trickle.generic_delta_plans",
	                         "Whether a stream table's delta statement is planned once per session and the plan "
	                         "reused (a generic plan), rather than planned again at every refresh.",
	                         "Applies to the delta for ordinary change windows; the variant for large windows is "
	                         "planned by PostgreSQL's plan_cache_mode. Planning a delta over many joins can cost more "
	                         "than running it.",
	                         &generic_delta_plans, true, PGC_USERSET, 0, nullptr, nullptr, nullptr);
	DefineCustomBoolVariable("pg_trickle.direct_capture",
	                         "Whether capture triggers write change buffers directly (heap multi-insert) rather "
	                         "than through an INSERT ... SELECT statement.",
	                         "Both write the same rows; the statement is slower. For comparison and diagnosis.",
	                         &direct_capture, true, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomBoolVariable("pg_trickle.enabled", "Whether the background scheduler refreshes stream tables.",
	                         "Change capture continues while it is off.", &scheduler_enabled, true, PGC_SIGHUP, 0,
	                         nullptr, nullptr, nullptr);
	DefineCustomIntVariable("pg_trickle.scheduler_interval_ms", "Time between two scheduler ticks.", nullptr,
	                        &scheduler_interval_ms, 1000, 100, 600000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
	                        nullptr);
	DefineCustomIntVariable("pg_trickle.max_consecutive_errors",
	                        "Failed scheduled refreshes in a row after which a stream table is suspended.", nullptr,
	                        &max_consecutive_errors, 3, 1, 100, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("pg_trickle.history_retention_days",
	                        "Days of refresh history the scheduler keeps (older rows are deleted).", nullptr,
	                        &history_retention_days, 7, 1, 3650, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("pg_trickle.default_schedule_seconds",
	                        "Shortest time between two refreshes of a calculated stream table that no consumer "
	                        "paces (it is refreshed when its sources change, at most this often).",
	                        nullptr, &default_schedule_seconds, 1, 0, 86400, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr,
	                        nullptr);
	DefineCustomEnumVariable("pg_trickle.cdc_mode",
	                         "How stream tables whose cdc_mode is not set capture changes of their source tables.",
	                         "trigger: capture triggers only; auto and wal: the scheduler moves a source to WAL "
	                         "decoding after its stream tables' first refresh (when wal_level = logical), and "
	                         "back to triggers if anything goes wrong.",
	                         &cdc_mode, kCdcAuto, kCdcModeOptions, PGC_SUSET, 0, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("pg_trickle.wal_transition_timeout",
	                        "Seconds a source may stay TRANSITIONING before it returns to trigger capture.", nullptr,
	                        &wal_transition_timeout, 300, 1, 86400, PGC_SUSET, GUC_UNIT_S, nullptr, nullptr, nullptr);
	DefineCustomIntVariable("pg_trickle.slot_lag_warning_threshold_mb",
	                        "WAL retained by a capture slot above which check_cdc_health() warns.", nullptr,
	                        &slot_lag_warning_threshold_mb, 100, 1, 1048576, PGC_SUSET, GUC_UNIT_MB, nullptr, nullptr,
	                        nullptr);
	DefineCustomIntVariable("pg_trickle.slot_lag_critical_threshold_mb",
	                        "WAL not yet decoded by a capture slot above which the source falls back to triggers "
	                        "(its stream tables are then reinitialized).",
	                        nullptr, &slot_lag_critical_threshold_mb, 1024, 1, 1048576, PGC_SUSET, GUC_UNIT_MB,
	                        nullptr, nullptr, nullptr);
	MarkGUCPrefixReserved("pg_trickle");
}

} // namespace pgtrickle::guc
