select
    project_id,
    item_id,
    class_id as true_class_id,
    annotation_id,
    -- the inverse-probability weight of the item's draw (1: a random evaluation round)
    cast(weight as {{ dbt.type_float() }}) as weight
from {{ source('alsql', 'evaluation_set') }}
