-- One row per project x declared business table x item: the table's events on the
-- item's entity before, during and after the item (int_business_event_hits: the
-- windows are the table's window_before_s / window_after_s), beside the latest model's
-- predicted class and the item's label of record. A table is declared in alsql.toml
-- ([business.NAME]; docs/analysts.md, "Your event tables, declared"); the projects kept
-- are those whose latest model predicted an item on an entity of the table.
select
    {{ grain_key(['h.project_id', 'h.business_table', 'h.item_id']) }} as business_event_key,
    h.project_id,
    r.project_name,
    h.business_table,
    h.item_id,
    h.entity,
    r.captured_at,
    h.end_s - h.start_s as item_seconds,
    r.latest_model_id as model_id,
    r.predicted_class_id,
    r.predicted_label,
    r.prediction_confidence,
    r.label_class_id,
    r.current_label,
    r.in_evaluation_set,
    h.window_before_s,
    h.window_after_s,
    h.events_before,
    h.events_during,
    h.events_after,
    case when h.events_before > 0 then 1 else 0 end as has_event_before,
    case when h.events_during + h.events_after > 0 then 1 else 0 end as has_event_after,
    h.seconds_since_event,
    h.seconds_to_event
from {{ ref('int_business_event_hits') }} as h
inner join {{ ref('item_index') }} as r on r.project_id = h.project_id and r.item_id = h.item_id
