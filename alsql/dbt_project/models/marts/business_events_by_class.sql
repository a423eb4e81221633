-- One row per project x declared business table x basis x class: of the items whose
-- class is that class (basis 'predicted': the latest model's prediction; 'label': the
-- label of record), how many are preceded by an event of the table on their entity
-- within the window before, how many are followed by one (from the item's start to the
-- end of the window after), and the events counted. Every class of the project has its
-- rows, with zeros where no item is of it. From business_events.
with bases as (
    select cast('predicted' as {{ dbt.type_string() }}) as basis
    union all
    select cast('label' as {{ dbt.type_string() }})
),

items as (
    select
        project_id, business_table, window_before_s, window_after_s,
        cast('predicted' as {{ dbt.type_string() }}) as basis, predicted_class_id as class_id,
        has_event_before, has_event_after, events_before, events_during, events_after
    from {{ ref('business_events') }}
    where predicted_class_id is not null
    union all
    select
        project_id, business_table, window_before_s, window_after_s,
        cast('label' as {{ dbt.type_string() }}), label_class_id,
        has_event_before, has_event_after, events_before, events_during, events_after
    from {{ ref('business_events') }}
    where label_class_id is not null
),

counted as (
    select
        project_id, business_table, basis, class_id,
        count(*) as items,
        sum(has_event_before) as items_with_event_before,
        sum(has_event_after) as items_with_event_after,
        sum(events_before) as events_before,
        sum(events_during) as events_during,
        sum(events_after) as events_after
    from items
    group by project_id, business_table, basis, class_id
),

tables as (
    select distinct project_id, project_name, business_table, window_before_s, window_after_s
    from {{ ref('business_events') }}
)

select
    {{ grain_key(['t.project_id', 't.business_table', 'b.basis', 'cls.class_id']) }} as business_class_key,
    t.project_id,
    t.project_name,
    t.business_table,
    b.basis,
    cls.class_id,
    cls.class_name,
    {{ is_normal_class('cls.class_name') }} as is_normal_class,
    t.window_before_s,
    t.window_after_s,
    coalesce(c.items, 0) as items,
    coalesce(c.items_with_event_before, 0) as items_with_event_before,
    coalesce(c.items_with_event_after, 0) as items_with_event_after,
    {{ ratio('c.items_with_event_before', 'c.items') }} as share_with_event_before,
    {{ ratio('c.items_with_event_after', 'c.items') }} as share_with_event_after,
    coalesce(c.events_before, 0) as events_before,
    coalesce(c.events_during, 0) as events_during,
    coalesce(c.events_after, 0) as events_after
from tables as t
cross join bases as b
inner join {{ ref('stg_classes') }} as cls on cls.project_id = t.project_id
left join counted as c
    on c.project_id = t.project_id and c.business_table = t.business_table
    and c.basis = b.basis and c.class_id = cls.class_id
