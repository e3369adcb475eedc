// pg_trickle's configuration parameters (GUCs). Registered once, in _PG_init.
#pragma once

namespace pgtrickle::guc {

extern int min_schedule_seconds;
extern double differential_max_change_ratio;
extern bool adaptive_refresh;
extern int large_window_rows;
extern bool generic_delta_plans;
enum DeltaVariant { kVariantAuto = 0, kVariantDefault = 1, kVariantLarge = 2 };
extern int delta_variant; // DeltaVariant
extern bool scheduler_enabled;
extern int scheduler_interval_ms;
extern int max_consecutive_errors;
extern int history_retention_days;
extern int default_schedule_seconds;

enum CdcMode { kCdcAuto = 0, kCdcTrigger = 1, kCdcWal = 2 };
extern int cdc_mode; // CdcMode
extern int wal_transition_timeout;
extern int slot_lag_warning_threshold_mb;
extern int slot_lag_critical_threshold_mb;
extern bool direct_capture; // capture triggers write buffers without an SQL statement

void Register();

} // namespace pgtrickle::guc
