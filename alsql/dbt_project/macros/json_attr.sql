{#- One attribute of the items.attributes JSON as text.
    ``key`` comes from the project's vars, never from user input; it is checked to be
    a plain identifier so it can sit inside a JSON path literal. -#}
{% macro json_attr(column, key) -%}
  {%- if not modules.re.match('^[A-Za-z_][A-Za-z0-9_]*$', key) -%}
    {{ exceptions.raise_compiler_error("json_attr: attribute key " ~ key ~ " must be a plain identifier") }}
  {%- endif -%}
  {{ return(adapter.dispatch('json_attr', 'alsql')(column, key)) }}
{%- endmacro %}

{% macro default__json_attr(column, key) -%}
  json_value({{ column }}, '$.{{ key }}')
{%- endmacro %}

{% macro sqlite__json_attr(column, key) -%}
  cast(json_extract({{ column }}, '$.{{ key }}') as text)
{%- endmacro %}

{% macro postgres__json_attr(column, key) -%}
  ({{ column }} ->> '{{ key }}')
{%- endmacro %}

{% macro sqlserver__json_attr(column, key) -%}
  json_value({{ column }}, '$.{{ key }}')
{%- endmacro %}
