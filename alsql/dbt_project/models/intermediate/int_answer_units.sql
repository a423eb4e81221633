-- The units the answer marts estimate from (docs/analysts.md, "How sure is the answer"):
-- one row per project x latest model x estimand x group x unit (an item the latest model
-- predicted). Every estimand is mean(a) / mean(b) over its units on the TRUE classes:
--   y_num, y_den       a and b from the item's evaluation label (NULL: not in the
--                      evaluation set; training labels are never used, they are not a
--                      uniform sample)
--   yhat_num, yhat_den the same parts with the predicted class in place of the true one
--   weight             the evaluation item's weight (1 for a uniform evaluation round);
--                      1 for an unlabeled unit
-- A plain mean or proportion has y_den = yhat_den = 1 (is_ratio = 0). shared_units = 1
-- where every unit of the estimand is in every group (groups by TRUE class: a unit's
-- group is unknown until it is labeled, so it enters each group through indicators);
-- 0 where the groups split the units (groups by an observed attribute).
{%- set attributes = [] %}
{%- for key in var('fairness_attributes') %}
{%- do attributes.append(json_attr('si.attributes', key)) %}
{%- endfor %}
{%- set float = dbt.type_float() %}
{%- set text = dbt.type_string() %}
with predicted as (
    -- the latest model's prediction of each item, and its evaluation label if any
    select
        r.project_id,
        r.latest_model_id as model_id,
        r.item_id,
        r.entity,
        r.predicted_class_id,
        r.predicted_label,
        cast(r.prediction_confidence as {{ float }}) as confidence,
        e.true_class_id,
        tc.class_name as true_label,
        case when e.item_id is null then 0 else 1 end as is_labeled,
        case when e.item_id is null then 1.0 else {{ evaluation_weight('e') }} end as weight
    from {{ ref('item_index') }} as r
    left join {{ ref('stg_evaluation_set') }} as e
        on e.project_id = r.project_id and e.item_id = r.item_id
    left join {{ ref('stg_classes') }} as tc
        on tc.project_id = r.project_id and tc.class_id = e.true_class_id
    where r.predicted_class_id is not null
),

-- maintenance_risk: failure within the window after a clip, by the clip's true
-- condition (abnormal = a class outside var('normal_classes')).
clips as (
    select
        m.project_id, p.model_id, m.item_id, p.is_labeled, p.weight,
        cast(m.failed_in_window as {{ float }}) as failed,
        1 - {{ is_normal_class('p.predicted_label') }} as predicted_abnormal,
        case when p.is_labeled = 1 then 1 - {{ is_normal_class('p.true_label') }} end as true_abnormal
    from {{ ref('maintenance_risk') }} as m
    inner join predicted as p on p.project_id = m.project_id and p.item_id = m.item_id
),

-- defect_warranty: a serial's claim, shared among its images (1 / images each), by the
-- image's true condition (defective = a class outside var('normal_classes')).
serial_images as (
    select
        d.project_id, p.model_id, p.item_id, p.is_labeled, p.weight,
        cast(d.has_claim as {{ float }}) / d.images as claim_share,
        cast(1 as {{ float }}) / d.images as serial_share,
        1 - {{ is_normal_class('p.predicted_label') }} as predicted_defective,
        case when p.is_labeled = 1 then 1 - {{ is_normal_class('p.true_label') }} end as true_defective
    from {{ ref('defect_warranty') }} as d
    inner join predicted as p on p.project_id = d.project_id and p.entity = d.serial
),

-- intersection_safety: a camera's accidents and the camera itself shared among its
-- images (1 / images each), by the image's true intersection type.
accidents as (
    select entity, count(*) as accidents
    from {{ ref('stg_gis_accidents') }}
    group by entity
),

camera_images as (
    select project_id, entity, count(*) as images
    from predicted
    where entity is not null
        and project_id in (select project_id from {{ ref('intersection_safety') }})
    group by project_id, entity
),

camera_units as (
    select
        p.project_id, p.model_id, p.item_id, p.is_labeled, p.weight,
        p.predicted_class_id, p.true_class_id,
        cast(coalesce(a.accidents, 0) as {{ float }}) / ci.images as accident_share,
        cast(1 as {{ float }}) / ci.images as camera_share
    from camera_images as ci
    inner join predicted as p on p.project_id = ci.project_id and p.entity = ci.entity
    left join accidents as a on a.entity = ci.entity
),

-- fairness_by_group: accuracy (the prediction is right) per group of items; the
-- model's confidence is its prediction of being right.
judged as (
    select
        p.project_id, p.model_id, p.item_id, p.is_labeled, p.weight, p.confidence,
        case when p.is_labeled = 1 then
            case when p.true_class_id = p.predicted_class_id then 1.0 else 0.0 end
        end as correct,
        cast('all' as {{ text }}) as g_all,
        cast(coalesce(p.entity, '(none)') as {{ text }}) as g_entity
        {%- for key in var('fairness_attributes') %},
        cast(coalesce({{ attributes[loop.index0] }}, '(none)') as {{ text }}) as g_{{ loop.index }}
        {%- endfor %}
    from predicted as p
    inner join {{ ref('stg_items') }} as si on si.item_id = p.item_id
),

units as (
    {%- for grp, flag in [('abnormal', 'true_abnormal'), ('normal', '1 - true_abnormal')] %}
    select
        project_id, model_id,
        cast('maintenance_risk' as {{ text }}) as mart,
        cast('failure_rate' as {{ text }}) as estimand,
        cast('share of clips followed by a machine failure within the window, by the clip''s true condition' as {{ text }}) as estimand_label,
        1 as is_ratio, 1 as shared_units,
        cast('{{ grp }}' as {{ text }}) as grp,
        item_id as unit_id, is_labeled, weight,
        failed * ({{ flag }}) as y_num,
        failed * ({{ flag | replace('true_', 'predicted_') }}) as yhat_num,
        1.0 * ({{ flag }}) as y_den,
        1.0 * ({{ flag | replace('true_', 'predicted_') }}) as yhat_den
    from clips
    union all
    {%- endfor %}
    {%- for grp, flag in [('defective', 'true_defective'), ('sound', '1 - true_defective')] %}
    select
        project_id, model_id,
        cast('defect_warranty' as {{ text }}),
        cast('claim_rate' as {{ text }}),
        cast('share of serials with a warranty claim, by the serial''s true condition' as {{ text }}),
        1, 1,
        cast('{{ grp }}' as {{ text }}),
        item_id, is_labeled, weight,
        claim_share * ({{ flag }}),
        claim_share * ({{ flag | replace('true_', 'predicted_') }}),
        serial_share * ({{ flag }}),
        serial_share * ({{ flag | replace('true_', 'predicted_') }})
    from serial_images
    union all
    {%- endfor %}
    select
        cu.project_id, cu.model_id,
        cast('intersection_safety' as {{ text }}),
        cast('accidents_per_camera' as {{ text }}),
        cast('accidents recorded per camera, by the camera''s true intersection type' as {{ text }}),
        1, 1,
        cast(cls.class_name as {{ text }}),
        cu.item_id, cu.is_labeled, cu.weight,
        case when cu.is_labeled = 1 then
            cu.accident_share * (case when cu.true_class_id = cls.class_id then 1.0 else 0.0 end) end,
        cu.accident_share * (case when cu.predicted_class_id = cls.class_id then 1.0 else 0.0 end),
        case when cu.is_labeled = 1 then
            cu.camera_share * (case when cu.true_class_id = cls.class_id then 1.0 else 0.0 end) end,
        cu.camera_share * (case when cu.predicted_class_id = cls.class_id then 1.0 else 0.0 end)
    from camera_units as cu
    inner join {{ ref('stg_classes') }} as cls on cls.project_id = cu.project_id
    union all
    -- item_index: the share of the project's items of each TRUE class
    select
        p.project_id, p.model_id,
        cast('item_index' as {{ text }}),
        cast('class_share' as {{ text }}),
        cast('share of the items of each true class' as {{ text }}),
        0, 1,
        cast(cls.class_name as {{ text }}),
        p.item_id, p.is_labeled, p.weight,
        case when p.is_labeled = 1 then
            case when p.true_class_id = cls.class_id then 1.0 else 0.0 end end,
        case when p.predicted_class_id = cls.class_id then 1.0 else 0.0 end,
        case when p.is_labeled = 1 then 1.0 end,
        1.0
    from predicted as p
    inner join {{ ref('stg_classes') }} as cls on cls.project_id = p.project_id
    {%- set kinds = [('all', 'g_all'), ('entity', 'g_entity')] %}
    {%- for key in var('fairness_attributes') %}
    {%- do kinds.append((key, 'g_' ~ loop.index)) %}
    {%- endfor %}
    {%- for kind, column in kinds %}
    union all
    select
        project_id, model_id,
        cast('fairness_by_group' as {{ text }}),
        cast('{{ 'accuracy' if kind == 'all' else 'accuracy_by_' ~ kind }}' as {{ text }}),
        cast('{{ 'share of items the model predicts right' if kind == 'all' else 'share of items the model predicts right, by ' ~ kind }}' as {{ text }}),
        0, 0,
        {{ column }},
        item_id, is_labeled, weight,
        correct, confidence, case when is_labeled = 1 then 1.0 end, 1.0
    from judged
    {%- endfor %}
    union all
    -- the declared business event tables and defect_warranty_by_class
    select
        project_id, model_id, mart, estimand, estimand_label, is_ratio, shared_units, grp,
        unit_id, is_labeled, weight, y_num, yhat_num, y_den, yhat_den
    from {{ ref('int_answer_units_business') }}
)

select
    {{ grain_key(['project_id', 'model_id', 'estimand', 'grp', 'unit_id']) }} as unit_key,
    project_id,
    model_id,
    mart,
    estimand,
    estimand_label,
    is_ratio,
    shared_units,
    grp,
    unit_id,
    is_labeled,
    cast(weight as {{ float }}) as weight,
    cast(y_num as {{ float }}) as y_num,
    cast(yhat_num as {{ float }}) as yhat_num,
    cast(y_den as {{ float }}) as y_den,
    cast(yhat_den as {{ float }}) as yhat_den
from units
