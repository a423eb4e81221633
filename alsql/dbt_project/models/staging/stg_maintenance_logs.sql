-- A table, not a view: no view of the marts depends on your table, so it can be dropped
-- or reloaded while the marts exist (PostgreSQL refuses to drop a table a view reads).
{{ config(materialized='table') }}

select
    log_id,
    machine as entity,
    {{ seed_timestamp('logged_at') }} as logged_at,
    event_type,
    cast(downtime_hours as {{ dbt.type_float() }}) as downtime_hours,
    cast(cost_usd as {{ dbt.type_float() }}) as cost_usd
from {{ business_table('maintenance_logs') }}
