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

{#- A condition on `project_id` (a SQL expression): the projects a join mart keeps. Your
    table named: every project. Unset: the demo records join only the projects named in
    var('demo_projects') (none by default), so they never land on your real entities and
    the mart is empty for your projects (`alsql marts build` warns). -#}
{% macro business_projects(name, project_id) -%}
  {%- if business_table_name(name) -%}
    1 = 1
  {%- else -%}
    {%- set demo = var('demo_projects', []) -%}
    {%- set demo = [demo] if demo is string else (demo or []) -%}
    {%- if execute -%}
      {{ log("alsql: no " ~ name ~ " table is named (var " ~ name ~ "_table): the demo records join only "
             ~ "the projects of var demo_projects " ~ (demo | list | string), info=True) }}
    {%- endif -%}
    {%- if demo | length == 0 -%}
      1 = 0
    {%- else -%}
      {{ project_id }} in (select project_id from {{ ref('stg_projects') }} where project_name in (
      {%- for p in demo -%}
        {{ 'N' if target.type == 'sqlserver' }}'{{ p | string | replace("'", "''") }}'{{ ', ' if not loop.last }}
      {%- endfor -%}))
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}
