{#- The analysts' own tables (GIS accidents, warranty claims, maintenance logs) that the
    join marts read. Each has a var naming the user's table, e.g.
      --vars '{gis_accidents_table: gis.accidents_2024}'
    (TABLE, SCHEMA.TABLE or DATABASE.SCHEMA.TABLE) or the environment variable
    ALSQL_GIS_ACCIDENTS_TABLE; `alsql marts build --gis-accidents` sets the var. Set: the
    table is read as source('business_<name>', <name>) (schema: the name's, else
    var('business_schema'), else where alsql's tables are). Unset: the packaged demo seed
    demo_<name> stands in, so the marts build on a fresh database too. -#}

{% macro business_table_name(name) -%}
  {{ return(var(name ~ '_table', env_var('ALSQL_' ~ (name | upper) ~ '_TABLE', '')) or '') }}
{%- endmacro %}

{% macro business_table(name) -%}
  {%- if business_table_name(name) -%}
    {{ source('business_' ~ name, name) }}
  {%- else -%}
    {{ ref('demo_' ~ name) }}
  {%- endif -%}
{%- endmacro %}
