-- The answer marts' units (as int_answer_units, which unions these in) for the declared
-- business event tables and for defect_warranty_by_class: one row per project x latest
-- model x estimand x group x unit (an item the latest model predicted). Groups are TRUE
-- classes (shared_units = 1: a unit enters each group through indicators), plus
-- '(normal)', the classes of var('normal_classes') pooled, where the project has two or
-- more:
--   <table>_after   share of items followed by an event of the declared table <table>
--                   from the item's start to window_after_s after its end (business_events)
--   <table>_before  share of items preceded by one within window_before_s
--   claim_rate_by_class  share of serials with a warranty claim by class, each serial
--                   weighted by the share of its images of the class (defect_warranty)
-- answer_differences pairs the groups, so each class is compared with the normal class,
-- or with '(normal)' where there are several.
{%- set float = dbt.type_float() %}
{%- set text = dbt.type_string() %}
with predicted as (
    select
        r.project_id,
        r.latest_model_id as model_id,
        r.item_id,
        r.entity,
        r.predicted_class_id,
        e.true_class_id,
        case when e.item_id is null then 0 else 1 end as is_labeled,
        case when e.item_id is null then 1.0 else {{ evaluation_weight('e') }} end as weight
    from {{ ref('item_index') }} as r
    left join {{ ref('stg_evaluation_set') }} as e
        on e.project_id = r.project_id and e.item_id = r.item_id
    where r.predicted_class_id is not null
),

-- each class of a project as a group, and '(normal)' holding every normal class where
-- there are two or more
groups as (
    select project_id, class_id, cast(class_name as {{ text }}) as grp
    from {{ ref('stg_classes') }}
    union all
    select project_id, class_id, cast('(normal)' as {{ text }})
    from {{ ref('stg_classes') }}
    where {{ is_normal_class('class_name') }} = 1
        and project_id in (
            select project_id from {{ ref('stg_classes') }}
            where {{ is_normal_class('class_name') }} = 1
            group by project_id
            having count(*) >= 2
        )
),

event_units as (
    select
        b.project_id, p.model_id, b.business_table, b.item_id, p.is_labeled, p.weight,
        p.predicted_class_id, p.true_class_id, b.window_before_s, b.window_after_s,
        cast(b.has_event_before as {{ float }}) as before_flag,
        cast(b.has_event_after as {{ float }}) as after_flag
    from {{ ref('business_events') }} as b
    inner join predicted as p on p.project_id = b.project_id and p.item_id = b.item_id
),

serial_units as (
    select
        d.project_id, p.model_id, p.item_id, p.is_labeled, p.weight, p.predicted_class_id, p.true_class_id,
        cast(d.has_claim as {{ float }}) / d.images as claim_share,
        cast(1 as {{ float }}) / d.images as serial_share
    from {{ ref('defect_warranty') }} as d
    inner join predicted as p on p.project_id = d.project_id and p.entity = d.serial
),

units as (
    {%- for side, flag in [('after', 'after_flag'), ('before', 'before_flag')] %}
    select
        u.project_id, u.model_id,
        cast('business_events' as {{ text }}) as mart,
        cast({{ dbt.concat(['u.business_table', "'_" ~ side ~ "'"]) }} as {{ text }}) as estimand,
        cast({{ dbt.concat(["'share of items "
            ~ ('followed by an event of ' if side == 'after' else 'preceded by an event of ') ~ "'",
            'u.business_table',
            "' within '",
            dbt.safe_cast('u.window_' ~ side ~ '_s', text),
            "' s " ~ ('after the item (from its start)' if side == 'after' else 'before the item')
            ~ " on the same entity, by the item''s true class'"]) }} as {{ text }}) as estimand_label,
        1 as is_ratio, 1 as shared_units,
        g.grp,
        u.item_id as unit_id, u.is_labeled, u.weight,
        case when u.is_labeled = 1 then u.{{ flag }} * (case when u.true_class_id = g.class_id then 1.0 else 0.0 end) end
            as y_num,
        u.{{ flag }} * (case when u.predicted_class_id = g.class_id then 1.0 else 0.0 end) as yhat_num,
        case when u.is_labeled = 1 then (case when u.true_class_id = g.class_id then 1.0 else 0.0 end) end as y_den,
        case when u.predicted_class_id = g.class_id then 1.0 else 0.0 end as yhat_den
    from event_units as u
    inner join groups as g on g.project_id = u.project_id
    union all
    {%- endfor %}
    select
        u.project_id, u.model_id,
        cast('defect_warranty_by_class' as {{ text }}),
        cast('claim_rate_by_class' as {{ text }}),
        cast('share of serials with a warranty claim, by the true class of their images (a serial weighted by the share of its images of the class)' as {{ text }}),
        1, 1,
        g.grp,
        u.item_id, u.is_labeled, u.weight,
        case when u.is_labeled = 1 then u.claim_share * (case when u.true_class_id = g.class_id then 1.0 else 0.0 end) end,
        u.claim_share * (case when u.predicted_class_id = g.class_id then 1.0 else 0.0 end),
        case when u.is_labeled = 1 then u.serial_share * (case when u.true_class_id = g.class_id then 1.0 else 0.0 end) end,
        u.serial_share * (case when u.predicted_class_id = g.class_id then 1.0 else 0.0 end)
    from serial_units as u
    inner join groups as g on g.project_id = u.project_id
)

-- a unit is in a group once: '(normal)' sums its classes' indicators (each 0 or 1, and
-- a unit's class is one of them at most)
select
    project_id, model_id, mart, estimand, estimand_label, is_ratio, shared_units, grp, unit_id, is_labeled,
    max(weight) as weight,
    sum(y_num) as y_num,
    sum(yhat_num) as yhat_num,
    sum(y_den) as y_den,
    sum(yhat_den) as yhat_den
from units
group by project_id, model_id, mart, estimand, estimand_label, is_ratio, shared_units, grp, unit_id, is_labeled
