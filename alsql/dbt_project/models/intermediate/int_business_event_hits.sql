-- One row per project x declared business table x item (with an entity and a capture
-- time) of the projects whose latest model predicted an item on an entity of the table:
-- the item's span, and the table's events on the same entity counted, and their value
-- columns summed, in three windows around it (seconds since 1970 UTC):
--   before  [start_s - window_before_s, start_s)
--   during  [start_s, end_s]           (an image is an instant: start_s = end_s)
--   after   (end_s, end_s + window_after_s]
-- The windows are the table's window_before_s / window_after_s (alsql.toml), else the
-- vars window_before_s / window_after_s (86400 s unless set). Read by business_events,
-- business_events_by_class and business_event_values.
{%- set specs = business_event_specs() %}
{%- set slots = business_event_value_slots(specs) %}
{%- set text = dbt.type_string() %}
{%- set float = dbt.type_float() %}
with windows as (
    {%- for s in specs %}
    select
        cast('{{ s.name }}' as {{ text }}) as business_table,
        cast({{ s.window_before_s }} as {{ float }}) as window_before_s,
        cast({{ s.window_after_s }} as {{ float }}) as window_after_s
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select cast(null as {{ text }}) as business_table, cast(null as {{ float }}) as window_before_s,
        cast(null as {{ float }}) as window_after_s
    where 1 = 0
    {%- endfor %}
),

events as (
    select * from {{ ref('stg_business_events') }}
),

table_entities as (
    select distinct business_table, entity from events
),

table_projects as (
    select distinct te.business_table, c.project_id
    from {{ ref('int_prediction_cells') }} as c
    inner join table_entities as te on te.entity = c.entity
),

spans as (
    select
        tp.business_table,
        r.project_id,
        r.item_id,
        r.entity,
        sp.start_s,
        sp.end_s
    from table_projects as tp
    cross join {{ ref('item_index') }} as r
    inner join {{ ref('stg_item_spans') }} as sp on sp.item_id = r.item_id
    where r.project_id = tp.project_id and r.entity is not null
),

hits as (
    select
        s.business_table,
        s.project_id,
        s.item_id,
        sum(case when e.event_s < s.start_s then 1 else 0 end) as events_before,
        sum(case when e.event_s >= s.start_s and e.event_s <= s.end_s then 1 else 0 end) as events_during,
        sum(case when e.event_s > s.end_s then 1 else 0 end) as events_after,
        max(case when e.event_s < s.start_s then e.event_s end) as last_event_before_s,
        min(case when e.event_s >= s.start_s then e.event_s end) as first_event_from_start_s
        {%- for k in range(slots) %}
        {%- for part, cond in [('before', 'e.event_s < s.start_s'),
                               ('during', 'e.event_s >= s.start_s and e.event_s <= s.end_s'),
                               ('after', 'e.event_s > s.end_s')] %},
        sum(case when {{ cond }} then e.value_{{ k + 1 }} end) as value_{{ k + 1 }}_{{ part }}
        {%- endfor %}
        {%- endfor %}
    from spans as s
    inner join windows as w on w.business_table = s.business_table
    inner join events as e
        on e.business_table = s.business_table
        and e.entity = s.entity
        and e.event_s >= s.start_s - w.window_before_s
        and e.event_s <= s.end_s + w.window_after_s
    group by s.business_table, s.project_id, s.item_id
)

select
    s.business_table,
    s.project_id,
    s.item_id,
    s.entity,
    s.start_s,
    s.end_s,
    w.window_before_s,
    w.window_after_s,
    coalesce(h.events_before, 0) as events_before,
    coalesce(h.events_during, 0) as events_during,
    coalesce(h.events_after, 0) as events_after,
    s.start_s - h.last_event_before_s as seconds_since_event,
    h.first_event_from_start_s - s.start_s as seconds_to_event
    {%- for k in range(slots) %}{% for part in ['before', 'during', 'after'] %},
    h.value_{{ k + 1 }}_{{ part }}
    {%- endfor %}{% endfor %}
from spans as s
inner join windows as w on w.business_table = s.business_table
left join hits as h
    on h.business_table = s.business_table and h.project_id = s.project_id and h.item_id = s.item_id
