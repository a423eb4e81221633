-- One row per project x item: where and when it was captured, its label of record,
-- and what the project's latest model says about it.
with projects as (
    select * from {{ ref('stg_projects') }}
),

items as (
    select * from {{ ref('stg_items') }}
),

current_labels as (
    select * from {{ ref('stg_current_labels') }}
),

human_labels as (
    -- 'oracle' labels are simulated (alsql loop); every other source is a person.
    select project_id, item_id, count(*) as human_labels
    from {{ ref('stg_annotations') }}
    where label_source <> 'oracle'
    group by project_id, item_id
),

latest_models as (
    {{ latest_models() }}
),

predictions as (
    select * from {{ ref('stg_predictions') }}
),

evaluation_set as (
    select * from {{ ref('stg_evaluation_set') }}
)

select
    {{ grain_key(['p.project_id', 'i.item_id']) }} as project_item_key,
    p.project_id,
    p.project_name,
    i.item_id,
    i.uri,
    i.entity,
    i.captured_at,
    i.latitude,
    i.longitude,
    i.item_status,
    cl.class_id as label_class_id,
    lc.class_name as current_label,
    cl.labeled_at,
    cl.label_source,
    case when cl.item_id is null then 0 else 1 end as is_labeled,
    case when hl.item_id is null then 0 else 1 end as is_human_labeled,
    case when ev.item_id is null then 0 else 1 end as in_evaluation_set,
    lm.model_id as latest_model_id,
    pr.predicted_class_id,
    pc.class_name as predicted_label,
    pr.confidence as prediction_confidence,
    pr.margin as prediction_margin
from projects as p
cross join items as i
left join current_labels as cl
    on cl.project_id = p.project_id and cl.item_id = i.item_id
-- the classes view itself, twice: a CTE named twice is copied into a temporary table
-- on SQLite, which then scans it for every item instead of probing the classes key
left join {{ ref('stg_classes') }} as lc
    on lc.project_id = p.project_id and lc.class_id = cl.class_id
left join human_labels as hl
    on hl.project_id = p.project_id and hl.item_id = i.item_id
left join evaluation_set as ev
    on ev.project_id = p.project_id and ev.item_id = i.item_id
left join latest_models as lm
    on lm.project_id = p.project_id
left join predictions as pr
    on pr.model_id = lm.model_id and pr.item_id = i.item_id
left join {{ ref('stg_classes') }} as pc
    on pc.project_id = p.project_id and pc.class_id = pr.predicted_class_id
