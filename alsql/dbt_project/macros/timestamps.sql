{#- Timestamps compared across alsql tables and seeds: naive UTC on every backend.
    SQLite keeps them as ISO text ('YYYY-MM-DD HH:MM:SS'), so every date function
    takes and returns text there. -#}

{#- alsql's own columns are UTC (timestamptz on PostgreSQL, datetimeoffset on SQL Server). -#}
{% macro utc_timestamp(column) -%}
  {{ return(adapter.dispatch('utc_timestamp', 'alsql')(column)) }}
{%- endmacro %}

{% macro default__utc_timestamp(column) -%}
  cast({{ column }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro sqlite__utc_timestamp(column) -%}
  datetime({{ column }})
{%- endmacro %}

{% macro postgres__utc_timestamp(column) -%}
  ({{ column }} at time zone 'UTC')
{%- endmacro %}

{% macro sqlserver__utc_timestamp(column) -%}
  cast(switchoffset({{ column }}, '+00:00') as datetime2(6))
{%- endmacro %}

{#- Seed and business-table columns: naive date-times already in UTC. -#}
{% macro seed_timestamp(column) -%}
  {{ return(adapter.dispatch('seed_timestamp', 'alsql')(column)) }}
{%- endmacro %}

{% macro default__seed_timestamp(column) -%}
  cast({{ column }} as {{ dbt.type_timestamp() }})
{%- endmacro %}

{% macro sqlite__seed_timestamp(column) -%}
  datetime({{ column }})
{%- endmacro %}

{#- The calendar day of a timestamp. -#}
{% macro to_day(column) -%}
  {{ return(adapter.dispatch('to_day', 'alsql')(column)) }}
{%- endmacro %}

{% macro default__to_day(column) -%}
  cast({{ column }} as date)
{%- endmacro %}

{% macro sqlite__to_day(column) -%}
  date({{ column }})
{%- endmacro %}

{#- The month of a timestamp as text 'YYYY-MM' (sorts in time order). -#}
{% macro to_month(column) -%}
  {{ return(adapter.dispatch('to_month', 'alsql')(column)) }}
{%- endmacro %}

{% macro default__to_month(column) -%}
  {{ dbt.left(dbt.safe_cast(column, dbt.type_string()), 7) }}
{%- endmacro %}

{% macro sqlite__to_month(column) -%}
  strftime('%Y-%m', {{ column }})
{%- endmacro %}

{% macro postgres__to_month(column) -%}
  to_char({{ column }}, 'YYYY-MM')
{%- endmacro %}

{% macro sqlserver__to_month(column) -%}
  convert(char(7), {{ column }}, 126)
{%- endmacro %}

{#- A timestamp plus a whole number of days. -#}
{% macro add_days(column, days) -%}
  {{ return(adapter.dispatch('add_days', 'alsql')(column, days)) }}
{%- endmacro %}

{% macro default__add_days(column, days) -%}
  {{ dbt.dateadd('day', days, column) }}
{%- endmacro %}

{% macro sqlite__add_days(column, days) -%}
  datetime({{ column }}, '+{{ days | int }} days')
{%- endmacro %}

{#- Days (fractional) from one timestamp to a later one. -#}
{% macro days_between(start, finish) -%}
  {{ return(adapter.dispatch('days_between', 'alsql')(start, finish)) }}
{%- endmacro %}

{% macro default__days_between(start, finish) -%}
  {{ dbt.datediff(start, finish, 'second') }} / 86400.0
{%- endmacro %}

{% macro sqlite__days_between(start, finish) -%}
  (julianday({{ finish }}) - julianday({{ start }}))
{%- endmacro %}

{% macro postgres__days_between(start, finish) -%}
  (extract(epoch from ({{ finish }} - {{ start }})) / 86400.0)
{%- endmacro %}
