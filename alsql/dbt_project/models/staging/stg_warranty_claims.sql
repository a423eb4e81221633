select
    claim_id,
    serial as entity,
    {{ seed_timestamp('claimed_at') }} as claimed_at,
    failure_mode,
    cast(cost_usd as {{ dbt.type_float() }}) as cost_usd
from {{ business_table('warranty_claims') }}
