select
    model_id,
    item_id,
    class_id as predicted_class_id,
    confidence,
    margin,
    entropy
from {{ source('alsql', 'predictions') }}
