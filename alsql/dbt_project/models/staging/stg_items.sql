select
    item_id,
    uri,
    sha256,
    media_type,
    width,
    height,
    entity,
    {{ utc_timestamp('captured_at') }} as captured_at,
    latitude,
    longitude,
    attributes,
    status as item_status,
    {{ utc_timestamp('ingested_at') }} as ingested_at
from {{ source('alsql', 'items') }}
