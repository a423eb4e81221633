-- A table, not a view: no view of the marts depends on your table, so it can be dropped
-- or reloaded while the marts exist (PostgreSQL refuses to drop a table a view reads).
{{ config(materialized='table') }}

select
    claim_id,
    serial as entity,
    {{ seed_timestamp('claimed_at') }} as claimed_at,
    failure_mode,
    cast(cost_usd as {{ dbt.type_float() }}) as cost_usd
from {{ business_table('warranty_claims') }}
