{#- Fails with every row where any of ``columns`` is NULL: the not_null test of many
    columns in one pass over the model (one scan of a large mart instead of one each). -#}
{% test not_null_columns(model, columns) %}
select {{ columns | join(', ') }}
from {{ model }}
where {% for c in columns %}{{ c }} is null{% if not loop.last %} or {% endif %}{% endfor %}
{% endtest %}
