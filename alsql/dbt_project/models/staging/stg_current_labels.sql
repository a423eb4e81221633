select
    project_id,
    item_id,
    annotation_id,
    class_id,
    annotator,
    {{ utc_timestamp('created_at') }} as labeled_at,
    source as label_source
from {{ source('alsql', 'current_labels') }}
