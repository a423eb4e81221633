-- The latest model of each project, per group of items and class: evaluation
-- accuracy, recall, prediction rate, and each one's gap to the whole project
-- (group minus overall). Groups: group_kind 'entity' (the item's entity) and one
-- group_kind per key of var('fairness_attributes') in items.attributes; a missing
-- value is the group '(none)'.
--   accuracy        = correct / evaluated items of the group (same on each class row)
--   recall          = evaluated items of the class predicted right / evaluated items of the class
--   prediction_rate = items predicted as the class / items the model predicted in the group
-- Accuracy and recall weight each evaluated item by its weight (int_prediction_cells'
-- eval_weight: 1 per item of a random evaluation round, the inverse-probability weight
-- of an active one), so with random rounds only they are the plain ratios of counts.
{#- Sums of counts keep the type count(*) has on the backend (bigint; int on SQL Server). -#}
{%- set count_type = 'int' if target.type == 'sqlserver' else dbt.type_bigint() %}
-- int_prediction_cells made the one pass over the latest model's predictions; this
-- mart sums its cells per group value (entity and each attribute, a missing value
-- being '(none)'), predicted class and true class. Everything below reads these
-- cells, which are few (groups x classes), not the rows.
with cells as (
    select
        project_id,
        model_id,
        predicted_class_id,
        true_class_id,
        cast(coalesce(entity, '(none)') as {{ dbt.type_string() }}) as g_entity,
        {%- for key in var('fairness_attributes') %}
        cast(coalesce(attr_{{ key }}, '(none)') as {{ dbt.type_string() }}) as g_{{ loop.index }},
        {%- endfor %}
        {{ sum_counts('items') }} as n,
        sum(eval_weight) as w
    from {{ ref('int_prediction_cells') }}
    group by
        project_id,
        model_id,
        predicted_class_id,
        true_class_id,
        cast(coalesce(entity, '(none)') as {{ dbt.type_string() }})
        {%- for key in var('fairness_attributes') %},
        cast(coalesce(attr_{{ key }}, '(none)') as {{ dbt.type_string() }})
        {%- endfor %}
),

grouped as (
    select
        project_id, model_id, predicted_class_id, true_class_id, n, w,
        cast('entity' as {{ dbt.type_string() }}) as group_kind,
        g_entity as group_value
    from cells
    {%- for key in var('fairness_attributes') %}
    union all
    select
        project_id, model_id, predicted_class_id, true_class_id, n, w,
        cast('{{ key }}' as {{ dbt.type_string() }}) as group_kind,
        g_{{ loop.index }} as group_value
    from cells
    {%- endfor %}
),

classes as (
    select * from {{ ref('stg_classes') }}
),

group_totals as (
    select
        project_id, model_id, group_kind, group_value,
        cast(sum(n) as {{ count_type }}) as items,
        cast(sum(case when true_class_id is not null then n else 0 end) as {{ count_type }}) as eval_items,
        sum(case when true_class_id is not null then w else 0 end) as eval_weight,
        sum(case when true_class_id = predicted_class_id then w else 0 end) as correct
    from grouped
    group by project_id, model_id, group_kind, group_value
),

group_classes as (
    select
        g.project_id, g.model_id, g.group_kind, g.group_value, c.class_id,
        cast(sum(case when gr.predicted_class_id = c.class_id then gr.n else 0 end) as {{ count_type }}) as predicted,
        cast(sum(case when gr.true_class_id = c.class_id then gr.n else 0 end) as {{ count_type }}) as support,
        sum(case when gr.true_class_id = c.class_id then gr.w else 0 end) as support_weight,
        sum(case when gr.true_class_id = c.class_id and gr.predicted_class_id = c.class_id
            then gr.w else 0 end) as true_positives
    from group_totals as g
    inner join classes as c on c.project_id = g.project_id
    left join grouped as gr
        on gr.project_id = g.project_id
        and gr.group_kind = g.group_kind
        and gr.group_value = g.group_value
    group by g.project_id, g.model_id, g.group_kind, g.group_value, c.class_id
),

overall_totals as (
    select
        project_id,
        cast(sum(n) as {{ count_type }}) as items,
        sum(case when true_class_id is not null then w else 0 end) as eval_weight,
        sum(case when true_class_id = predicted_class_id then w else 0 end) as correct
    from cells
    group by project_id
),

overall_classes as (
    select
        c.project_id, c.class_id,
        cast(sum(case when s.predicted_class_id = c.class_id then s.n else 0 end) as {{ count_type }}) as predicted,
        sum(case when s.true_class_id = c.class_id then s.w else 0 end) as support_weight,
        sum(case when s.true_class_id = c.class_id and s.predicted_class_id = c.class_id
            then s.w else 0 end) as true_positives
    from classes as c
    inner join cells as s on s.project_id = c.project_id
    group by c.project_id, c.class_id
),

metrics as (
    select
        gc.project_id,
        gc.model_id,
        gc.group_kind,
        gc.group_value,
        gc.class_id,
        gt.items,
        gt.eval_items,
        gc.support,
        {{ ratio('gt.correct', 'gt.eval_weight') }} as accuracy,
        {{ ratio('ot.correct', 'ot.eval_weight') }} as overall_accuracy,
        {{ ratio('gc.true_positives', 'gc.support_weight') }} as recall,
        {{ ratio('oc.true_positives', 'oc.support_weight') }} as overall_recall,
        {{ ratio('gc.predicted', 'gt.items') }} as prediction_rate,
        {{ ratio('oc.predicted', 'ot.items') }} as overall_prediction_rate
    from group_classes as gc
    inner join group_totals as gt
        on gt.project_id = gc.project_id
        and gt.group_kind = gc.group_kind
        and gt.group_value = gc.group_value
    inner join overall_totals as ot on ot.project_id = gc.project_id
    inner join overall_classes as oc
        on oc.project_id = gc.project_id and oc.class_id = gc.class_id
)

select
    {{ grain_key(['m.project_id', 'm.group_kind', 'm.group_value', 'm.class_id']) }} as fairness_key,
    m.project_id,
    m.model_id,
    m.group_kind,
    m.group_value,
    m.class_id,
    c.class_name,
    m.items,
    m.eval_items,
    m.support,
    m.accuracy,
    m.accuracy - m.overall_accuracy as accuracy_gap,
    m.recall,
    m.recall - m.overall_recall as recall_gap,
    m.prediction_rate,
    m.prediction_rate - m.overall_prediction_rate as prediction_rate_gap,
    m.overall_accuracy,
    m.overall_recall,
    m.overall_prediction_rate
from metrics as m
inner join classes as c on c.project_id = m.project_id and c.class_id = m.class_id
