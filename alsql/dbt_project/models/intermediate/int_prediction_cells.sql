-- The latest model of each project (the newest model version that has predictions),
-- its predictions counted into cells: one row per project x predicted class x true
-- class (of the evaluation set; NULL outside it) x entity x value of each
-- var('fairness_attributes') key x capture month, with the cell's item count and top
-- confidence. This is the one pass over the latest predictions and their items that
-- fairness_by_group, prediction_drift (its months), defect_warranty and
-- intersection_safety share; each of them reads the cells, which are few where items
-- share entities and attribute values (groups x classes x months), not the rows.
{%- set attributes = [] %}
{%- for key in var('fairness_attributes') %}
{%- do attributes.append(json_attr('i.attributes', key)) %}
{%- endfor %}
with latest_models as (
    {{ latest_models() }}
)

select
    m.project_id,
    m.model_id,
    p.predicted_class_id,
    e.true_class_id,
    i.entity,
    {%- for key in var('fairness_attributes') %}
    {{ attributes[loop.index0] }} as attr_{{ key }},
    {%- endfor %}
    {{ to_month('i.captured_at') }} as captured_month,
    count(*) as items,
    -- the evaluation items' total weight (NULL outside the evaluation set)
    sum(e.weight) as eval_weight,
    max(p.confidence) as max_confidence
from latest_models as m
inner join {{ ref('stg_predictions') }} as p on p.model_id = m.model_id
inner join {{ ref('stg_items') }} as i on i.item_id = p.item_id
left join {{ ref('stg_evaluation_set') }} as e
    on e.project_id = m.project_id and e.item_id = p.item_id
group by
    m.project_id,
    m.model_id,
    p.predicted_class_id,
    e.true_class_id,
    i.entity,
    {%- for expression in attributes %}
    {{ expression }},
    {%- endfor %}
    {{ to_month('i.captured_at') }}
