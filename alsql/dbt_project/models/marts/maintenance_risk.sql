-- One row per project x machine item (an image, a video segment or a sound clip) with
-- a capture time: the latest model's call (anomaly = a class outside
-- var('normal_classes')) and what the maintenance log recorded for that machine (the
-- items' entity) in the var('maintenance_window_days') days after the item was
-- captured. Only projects whose machines appear in the log are kept. The log: the
-- user's table named by var('maintenance_logs_table'), else the demo seed.
{% set window_days = var('maintenance_window_days') | int %}
-- The projects whose machines are in the log, from int_prediction_cells (the latest
-- model's predictions counted per entity and capture month): where no project's are,
-- no row of item_index is read.
with logs as (
    select * from {{ ref('stg_maintenance_logs') }}
),

machine_projects as (
    select distinct c.project_id
    from {{ ref('int_prediction_cells') }} as c
    inner join logs as l on l.entity = c.entity
    where c.captured_month is not null and {{ business_projects('maintenance_logs', 'c.project_id') }}
),

images as (
    select
        r.project_item_key,
        r.project_id,
        r.item_id,
        r.entity,
        r.captured_at,
        r.predicted_label,
        r.prediction_confidence,
        1 - {{ is_normal_class('r.predicted_label') }} as is_predicted_anomaly
    -- machine_projects first (a cross join keeps SQLite's join order): item_index is
    -- scanned once per machine project, never when there is none
    from machine_projects as mp
    cross join {{ ref('item_index') }} as r
    where r.project_id = mp.project_id
        and r.predicted_class_id is not null and r.entity is not null and r.captured_at is not null
),

in_window as (
    select
        i.project_id,
        i.item_id,
        count(*) as events_in_window,
        sum(case when l.event_type = 'failure' then 1 else 0 end) as failures_in_window,
        min(case when l.event_type = 'failure' then l.logged_at end) as first_failure_at,
        sum(l.downtime_hours) as downtime_hours,
        sum(l.cost_usd) as maintenance_cost_usd
    from images as i
    inner join logs as l
        on l.entity = i.entity
        and l.logged_at > i.captured_at
        and l.logged_at <= {{ add_days('i.captured_at', window_days) }}
    group by i.project_id, i.item_id
)

select
    i.project_item_key,
    i.project_id,
    i.item_id,
    i.entity as machine,
    i.captured_at,
    i.predicted_label,
    i.prediction_confidence,
    i.is_predicted_anomaly,
    {{ window_days }} as window_days,
    coalesce(w.events_in_window, 0) as events_in_window,
    coalesce(w.failures_in_window, 0) as failures_in_window,
    case when coalesce(w.failures_in_window, 0) > 0 then 1 else 0 end as failed_in_window,
    w.first_failure_at,
    {{ days_between('i.captured_at', 'w.first_failure_at') }} as days_to_failure,
    coalesce(w.downtime_hours, 0) as downtime_hours,
    coalesce(w.maintenance_cost_usd, 0) as maintenance_cost_usd
from images as i
left join in_window as w on w.project_id = i.project_id and w.item_id = i.item_id
