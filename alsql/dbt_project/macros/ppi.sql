{#- Prediction-powered inference from SQL aggregates (docs/analysts.md, "How sure is the
    answer"). Every estimand is a ratio of two means over units, mean(a) / mean(b): a
    plain mean or proportion has b = 1. Each unit carries its true parts a, b (NULL when
    it has no evaluation label), its predicted parts ah, bh, and a weight v. One pass
    over the units sums, per group:
      labeled (n units, weights v):    s_X = sum v X,      q_X_Y = sum v^2 X Y
      unlabeled (N units, weights v):  su_X = sum v X,     qu_X_Y = sum v^2 X Y
      all units, unweighted (naive):   t_X = sum X,        tq_X_Y = sum X Y
    for X, Y among the components one (the constant 1), a, ah, b, bh. Weights are
    normalized to sum to n (and N) as ppi_py does, so with W = s_one:
      mean of w f          = f-sum / W
      variance of w f      = (n / W^2) k'Qk - (k's / W)^2     (population variance)
    for f = k . (one, a, ah, b, bh), a linear combination with coefficients k. The
    macros below write those quadratic forms as SQL. -#}

{% macro ppi_components(part='labeled') -%}
  {%- if part == 'labeled' -%}
    {{ return(['one', 'a', 'ah', 'b', 'bh']) }}
  {%- else -%}
    {{ return(['one', 'ah', 'bh']) }}
  {%- endif -%}
{%- endmacro %}

{#- The unit column holding component X. -#}
{% macro _ppi_value(x) -%}
  {{ {'one': '1.0', 'a': 'y_num', 'ah': 'yhat_num', 'b': 'y_den', 'bh': 'yhat_den'}[x] }}
{%- endmacro %}

{#- The moment column holding sum X Y (X, Y in either order). -#}
{% macro _ppi_q(prefix, x, y) -%}
  {%- set order = ['one', 'a', 'ah', 'b', 'bh'] -%}
  {%- if order.index(x) <= order.index(y) -%}{{ prefix }}_{{ x }}_{{ y }}{%- else -%}{{ prefix }}_{{ y }}_{{ x }}{%- endif -%}
{%- endmacro %}

{#- The aggregates above as select-list items, over the columns of int_answer_units
    (is_labeled, weight, y_num, yhat_num, y_den, yhat_den), for a GROUP BY. -#}
{% macro ppi_moments() -%}
  {%- set lab = ppi_components('labeled') -%}
  {%- set unl = ppi_components('unlabeled') -%}
    {%- for x in lab %}
    sum(case when is_labeled = 1 then weight * {{ _ppi_value(x) }} else 0.0 end) as s_{{ x }},
    {%- for y in lab[loop.index0:] %}
    sum(case when is_labeled = 1 then weight * weight * {{ _ppi_value(x) }} * {{ _ppi_value(y) }} else 0.0 end) as q_{{ x }}_{{ y }},
    {%- endfor %}
    {%- endfor %}
    {%- for x in unl %}
    sum(case when is_labeled = 1 then 0.0 else weight * {{ _ppi_value(x) }} end) as su_{{ x }},
    {%- for y in unl[loop.index0:] %}
    sum(case when is_labeled = 1 then 0.0 else weight * weight * {{ _ppi_value(x) }} * {{ _ppi_value(y) }} end) as qu_{{ x }}_{{ y }},
    {%- endfor %}
    {%- endfor %}
    {%- for x in unl %}
    sum({{ _ppi_value(x) }}) as t_{{ x }},
    {%- for y in unl[loop.index0:] %}
    sum({{ _ppi_value(x) }} * {{ _ppi_value(y) }}) as tq_{{ x }}_{{ y }},
    {%- endfor %}
    {%- endfor %}
    sum(case when is_labeled = 1 then 1 else 0 end) as n_labeled,
    sum(case when is_labeled = 1 then 0 else 1 end) as n_unlabeled
{%- endmacro %}

{#- k' M j for coefficient dicts k, j (component -> SQL expression; missing = 0) over the
    moment columns named prefix_X_Y. -#}
{% macro ppi_bilinear(k, j, prefix, symmetric=true) -%}
  {%- set terms = [] -%}
  {%- for x, kx in k.items() -%}
    {%- for y, jy in j.items() -%}
      {%- set column = _ppi_q(prefix, x, y) if symmetric else prefix ~ '_' ~ x ~ '_' ~ y -%}
      {%- do terms.append('(' ~ kx ~ ') * (' ~ jy ~ ') * ' ~ column) -%}
    {%- endfor -%}
  {%- endfor -%}
  ({{ terms | join(' + ') if terms else '0.0' }})
{%- endmacro %}

{#- k's for a coefficient dict k over the sum columns named prefix_X. -#}
{% macro ppi_linear(k, prefix) -%}
  {%- set terms = [] -%}
  {%- for x, kx in k.items() -%}
    {%- do terms.append('(' ~ kx ~ ') * ' ~ prefix ~ '_' ~ x) -%}
  {%- endfor -%}
  ({{ terms | join(' + ') if terms else '0.0' }})
{%- endmacro %}

{#- Population covariance of w (k . x) and w (j . x) over a part with count `count`,
    weight sum `total`, sums prefix s and products prefix q (NULL when total is 0). -#}
{% macro ppi_cov(k, j, count, total, s, q) -%}
  ({{ count }} * {{ ppi_bilinear(k, j, q) }} / nullif({{ total }} * {{ total }}, 0)
    - {{ ppi_linear(k, s) }} * {{ ppi_linear(j, s) }} / nullif({{ total }} * {{ total }}, 0))
{%- endmacro %}

{#- PPI++'s mean of a component pair as ppi_py computes it for power-tuning lam:
    lam * (unlabeled mean of the prediction) + (labeled mean of truth - lam * prediction). -#}
{% macro ppi_mean(lam, true_part, predicted_part) -%}
  (({{ lam }}) * coalesce(su_{{ predicted_part }} / nullif(su_one, 0), 0.0)
    + (s_{{ true_part }} - ({{ lam }}) * s_{{ predicted_part }}) / nullif(s_one, 0))
{%- endmacro %}

{#- The variance of a number that is not below 0 (sums of squares minus a square can
    round a zero variance to -1e-17). -#}
{% macro nonnegative(expression) -%}
  (case when ({{ expression }}) < 0 then 0.0 else ({{ expression }}) end)
{%- endmacro %}

{#- The evaluation item's weight (stg_evaluation_set's weight: 1 for a random evaluation
    round, (K / N_pool) / inclusion probability for an active one; 1 where none is stored). -#}
{% macro evaluation_weight(alias) -%}
  coalesce(cast({{ alias }}.weight as {{ dbt.type_float() }}), 1.0)
{%- endmacro %}
