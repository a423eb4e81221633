select
    accident_id,
    camera_entity as entity,
    {{ seed_timestamp('occurred_at') }} as occurred_at,
    severity,
    injuries,
    latitude,
    longitude
from {{ business_table('gis_accidents') }}
