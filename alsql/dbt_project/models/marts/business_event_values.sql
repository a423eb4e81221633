-- One row per project x declared business table x item x declared value column, for the
-- items with an event of the table in one of their windows: the column summed over the
-- events before, during and after the item (0 where none has a value). The value
-- columns are the declaration's `values` (alsql.toml [business.NAME]); a table without
-- any has no rows here.
{%- set specs = business_event_specs() %}
{%- set text = dbt.type_string() %}
{%- set float = dbt.type_float() %}
{%- set parts = [] %}
{%- for s in specs %}{% for v in s['values'] %}{% do parts.append((s.name, v, loop.index)) %}{% endfor %}{% endfor %}
with hits as (
    select * from {{ ref('int_business_event_hits') }}
    where events_before + events_during + events_after > 0
),

values_long as (
    {%- for name, column, k in parts %}
    select
        project_id, business_table, item_id,
        cast('{{ column }}' as {{ text }}) as value_name,
        coalesce(value_{{ k }}_before, 0) as sum_before,
        coalesce(value_{{ k }}_during, 0) as sum_during,
        coalesce(value_{{ k }}_after, 0) as sum_after
    from hits
    where business_table = '{{ name }}'
    {% if not loop.last %}union all{% endif %}
    {%- else %}
    select
        project_id, business_table, item_id,
        cast(null as {{ text }}) as value_name,
        cast(null as {{ float }}) as sum_before,
        cast(null as {{ float }}) as sum_during,
        cast(null as {{ float }}) as sum_after
    from hits
    where 1 = 0
    {%- endfor %}
)

select
    {{ grain_key(['project_id', 'business_table', 'item_id', 'value_name']) }} as business_value_key,
    project_id,
    business_table,
    item_id,
    value_name,
    cast(sum_before as {{ float }}) as sum_before,
    cast(sum_during as {{ float }}) as sum_during,
    cast(sum_after as {{ float }}) as sum_after
from values_long
