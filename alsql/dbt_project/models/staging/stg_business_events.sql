-- One row per event of every business event table declared in alsql.toml
-- ([business.NAME], var business_event_tables): the table's name, the event's entity
-- (as text, to meet items.entity), its time (naive UTC) and seconds since 1970 UTC, and
-- its value columns in order as value_1, value_2, ... (NULL past a table's own count).
-- Rows without an entity or a time are left out. No table declared: no rows.
-- A table, not a view: your tables stay yours to drop and reload while the marts exist.
{{ config(materialized='table') }}
{%- set specs = business_event_specs() %}
{%- set slots = business_event_value_slots(specs) %}
{%- set text = dbt.type_string() %}
{%- set float = dbt.type_float() %}
{%- if specs %}
{%- for s in specs %}
select
    cast('{{ s.name }}' as {{ text }}) as business_table,
    cast({{ adapter.quote(s.entity) }} as {{ text }}) as entity,
    {{ seed_timestamp(adapter.quote(s.time)) }} as event_at,
    {{ epoch_seconds(adapter.quote(s.time)) }} as event_s
    {%- for k in range(slots) %},
    {% if k < s['values'] | length %}cast({{ adapter.quote(s['values'][k]) }} as {{ float }}){% else %}cast(null as {{ float }}){% endif %} as value_{{ k + 1 }}
    {%- endfor %}
from {{ source(s.source, 'events') }}
where {{ adapter.quote(s.entity) }} is not null and {{ adapter.quote(s.time) }} is not null
{% if not loop.last %}union all
{% endif %}
{%- endfor %}
{%- else %}
select
    cast(null as {{ text }}) as business_table,
    cast(null as {{ text }}) as entity,
    cast(null as {{ dbt.type_timestamp() }}) as event_at,
    cast(null as {{ float }}) as event_s
where 1 = 0
{%- endif %}
