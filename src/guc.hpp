// pg_trickle's configuration parameters (GUCs). Registered once, in _PG_init.
#pragma once

namespace pgtrickle::guc {

extern int min_schedule_seconds;
extern double differential_max_change_ratio;
extern bool scheduler_enabled;
extern int scheduler_interval_ms;
extern int max_consecutive_errors;
extern int history_retention_days;
extern int default_schedule_seconds;

void Register();

} // namespace pgtrickle::guc
