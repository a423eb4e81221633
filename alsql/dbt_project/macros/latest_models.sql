{#- The latest model of each project: its newest model version that has predictions (a
    model still training, or not yet run over the items, is not the latest). One row per
    project: project_id, model_id. The predictions key is probed for existence, never
    scanned. Read by item_index and int_prediction_cells, so both name the same model. -#}
{% macro latest_models() -%}
select project_id, model_id
from (
    select
        project_id,
        model_id,
        row_number() over (partition by project_id order by created_at desc, model_id desc) as recency
    from {{ ref('stg_model_versions') }} as mv
    where exists (select 1 from {{ ref('stg_predictions') }} as p where p.model_id = mv.model_id)
) as ranked
where recency = 1
{%- endmacro %}
