{#- The business event tables declared in alsql.toml ([business.NAME]), which
    `alsql marts build` passes as the var business_event_tables: a list of
      {name, table, schema?, entity, time, values?, window_before_s?, window_after_s?}
    (docs/analysts.md, "Your event tables, declared"). Table k of the list is read as
    source('business_event_<k>', 'events') (models/staging/__business_event_sources.yml).
    Every name is checked here again against a strict identifier pattern: dbt quotes it
    as a relation or column name, and no SQL text of the user's reaches a query. -#}

{% macro business_event_specs() -%}
  {%- set raw = var('business_event_tables', []) or [] -%}
  {%- set pattern = '^[A-Za-z_][A-Za-z0-9_]{0,62}$' -%}
  {%- if raw is string or raw is mapping -%}
    {{ exceptions.raise_compiler_error("var business_event_tables: expected a list of table specs, got " ~ raw) }}
  {%- endif -%}
  {%- if raw | length > 8 -%}
    {{ exceptions.raise_compiler_error("var business_event_tables: " ~ (raw | length) ~ " tables; expected at most 8") }}
  {%- endif -%}
  {%- set specs = [] -%}
  {%- for t in raw -%}
    {%- if t is not mapping -%}
      {{ exceptions.raise_compiler_error("var business_event_tables item " ~ loop.index ~ ": expected a mapping, got " ~ t) }}
    {%- endif -%}
    {%- for key in ['name', 'table', 'entity', 'time'] + (['schema'] if t.get('schema') else []) -%}
      {%- if t.get(key) is not string or not modules.re.match(pattern, t.get(key)) -%}
        {{ exceptions.raise_compiler_error("var business_event_tables item " ~ loop.index ~ " " ~ key ~ " = "
            ~ t.get(key) ~ ": expected a name of letters, digits and _ starting with a letter or _") }}
      {%- endif -%}
    {%- endfor -%}
    {%- set values = t.get('values') or [] -%}
    {%- for v in values -%}
      {%- if v is not string or not modules.re.match(pattern, v) -%}
        {{ exceptions.raise_compiler_error("var business_event_tables " ~ t.name ~ " values: " ~ v
            ~ ": expected a column name of letters, digits and _") }}
      {%- endif -%}
    {%- endfor -%}
    {%- set before = t.get('window_before_s', var('window_before_s', 86400)) -%}
    {%- set after = t.get('window_after_s', var('window_after_s', 86400)) -%}
    {%- for w in [before, after] -%}
      {%- if w is not number or w < 0 -%}
        {{ exceptions.raise_compiler_error("var business_event_tables " ~ t.name ~ ": window " ~ w
            ~ ": expected a number of seconds, 0 or more") }}
      {%- endif -%}
    {%- endfor -%}
    {%- do specs.append({'name': t.name, 'table': t.table, 'schema': t.get('schema'), 'entity': t.entity,
                         'time': t.time, 'values': values, 'window_before_s': before | float,
                         'window_after_s': after | float, 'source': 'business_event_' ~ loop.index}) -%}
  {%- endfor -%}
  {{ return(specs) }}
{%- endmacro %}

{#- The largest number of value columns over the declared tables. -#}
{% macro business_event_value_slots(specs) -%}
  {%- set n = [0] -%}
  {%- for s in specs -%}
    {%- if s['values'] | length > n[0] -%}{%- do n.append(s['values'] | length) -%}{%- do n.pop(0) -%}{%- endif -%}
  {%- endfor -%}
  {{ return(n[0]) }}
{%- endmacro %}

{#- Seconds since 1970-01-01 00:00 UTC of a timestamp, fractions of a second kept: a
    timestamp with a zone (alsql's own columns) at its UTC instant, one without (your
    tables) read as UTC. -#}
{% macro epoch_seconds(column) -%}
  {{ return(adapter.dispatch('epoch_seconds', 'alsql')(column)) }}
{%- endmacro %}

{% macro default__epoch_seconds(column) -%}
  cast({{ dbt.datediff("cast('1970-01-01' as " ~ dbt.type_timestamp() ~ ")", column, 'millisecond') }} as {{ dbt.type_float() }}) / 1000.0
{%- endmacro %}

{#- strftime('%s') is whole seconds; '%f' - '%S' adds the milliseconds. -#}
{% macro sqlite__epoch_seconds(column) -%}
  (cast(strftime('%s', {{ column }}) as real) + cast(strftime('%f', {{ column }}) as real)
    - cast(strftime('%S', {{ column }}) as real))
{%- endmacro %}

{% macro postgres__epoch_seconds(column) -%}
  cast(extract(epoch from {{ column }}) as double precision)
{%- endmacro %}

{% macro sqlserver__epoch_seconds(column) -%}
  (cast(datediff_big(millisecond, cast('1970-01-01' as datetime2(6)),
    cast(switchoffset(cast({{ column }} as datetimeoffset), '+00:00') as datetime2(6))) as float) / 1000.0)
{%- endmacro %}
