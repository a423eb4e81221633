select
    annotation_id,
    project_id,
    item_id,
    class_id,
    annotator,
    {{ utc_timestamp('created_at') }} as labeled_at,
    seconds as seconds_spent,
    source as label_source
from {{ source('alsql', 'annotations') }}
