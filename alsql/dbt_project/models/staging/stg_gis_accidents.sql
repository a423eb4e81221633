-- A table, not a view: no view of the marts depends on your table, so it can be dropped
-- or reloaded while the marts exist (PostgreSQL refuses to drop a table a view reads).
{{ config(materialized='table') }}

select
    accident_id,
    camera_entity as entity,
    {{ seed_timestamp('occurred_at') }} as occurred_at,
    severity,
    injuries,
    latitude,
    longitude
from {{ business_table('gis_accidents') }}
