{#- The analysts' own tables (GIS accidents, warranty claims, maintenance logs) that the
    join marts read. Each has a var naming the user's table, e.g.
      --vars '{gis_accidents_table: accidents_2024}'
    or the environment variable ALSQL_GIS_ACCIDENTS_TABLE (what `alsql marts build`
    passes on). Set: the table is read as source('business', <name>) from schema
    var('business_schema') (default: where alsql's tables are). Unset: the packaged demo
    seed demo_<name> stands in, so the marts build on a fresh database too. -#}

{% macro business_table_name(name) -%}
  {{ return(var(name ~ '_table', env_var('ALSQL_' ~ (name | upper) ~ '_TABLE', '')) or '') }}
{%- endmacro %}

{% macro business_table(name) -%}
  {%- if business_table_name(name) -%}
    {{ source('business', name) }}
  {%- else -%}
    {{ ref('demo_' ~ name) }}
  {%- endif -%}
{%- endmacro %}
