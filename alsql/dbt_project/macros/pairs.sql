{#- Each class's counts and shares in one group (a model version, a month) beside the
    same class in the next group of the project: `number_column` numbers the groups 1, 2, ...
    in `shares`; `baseline` / `compared` label the two groups (expressions over b. and c.). -#}
{% macro neighbour_pairs(comparison, shares, number_column, baseline, compared) %}
    select
        '{{ comparison }}' as comparison,
        b.project_id,
        {{ baseline }} as baseline,
        {{ compared }} as compared,
        b.model_id as baseline_model_id,
        c.model_id as compared_model_id,
        b.class_id,
        b.n_items as baseline_items,
        c.n_items as compared_items,
        b.share as baseline_share,
        c.share as compared_share
    from {{ shares }} as b
    inner join {{ shares }} as c
        on c.project_id = b.project_id
        and c.{{ number_column }} = b.{{ number_column }} + 1
        and c.class_id = b.class_id
{% endmacro %}
