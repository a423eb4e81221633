{#- Natural logarithm (SQL Server spells it LOG). -#}
{% macro ln(expression) -%}
  {{ return(adapter.dispatch('ln', 'alsql')(expression)) }}
{%- endmacro %}

{% macro default__ln(expression) -%}
  ln({{ expression }})
{%- endmacro %}

{% macro sqlserver__ln(expression) -%}
  log({{ expression }})
{%- endmacro %}

{#- a / b as a float, NULL when b is 0 (integer division truncates on every backend). -#}
{% macro ratio(numerator, denominator) -%}
  (cast({{ numerator }} as {{ dbt.type_float() }}) / nullif({{ denominator }}, 0))
{%- endmacro %}

{#- A text key made of several columns, '-'-separated: the tested key of a composite grain. -#}
{% macro grain_key(columns) -%}
  {%- set parts = [] -%}
  {%- for c in columns -%}
    {%- if not loop.first %}{% do parts.append("'-'") %}{% endif -%}
    {%- do parts.append("coalesce(" ~ dbt.safe_cast(c, dbt.type_string()) ~ ", '')") -%}
  {%- endfor -%}
  {{ dbt.concat(parts) }}
{%- endmacro %}

{#- 1 when the (class name) expression is one of the "normal" classes of var normal_classes. -#}
{% macro is_normal_class(expression) -%}
  case when {{ expression }} in (
    {%- for c in var('normal_classes') %}'{{ c | replace("'", "''") }}'{{ "," if not loop.last }}{% endfor -%}
  ) then 1 else 0 end
{%- endmacro %}

{#- sum() of counts, typed as count(*) is on the backend: bigint (int on SQL Server),
    where a plain sum would widen it (numeric on PostgreSQL); untyped on SQLite. -#}
{% macro sum_counts(expression) -%}
  {{ return(adapter.dispatch('sum_counts', 'alsql')(expression)) }}
{%- endmacro %}

{% macro default__sum_counts(expression) -%}
  cast(sum({{ expression }}) as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro sqlserver__sum_counts(expression) -%}
  cast(sum({{ expression }}) as int)
{%- endmacro %}

{% macro sqlite__sum_counts(expression) -%}
  sum({{ expression }})
{%- endmacro %}
