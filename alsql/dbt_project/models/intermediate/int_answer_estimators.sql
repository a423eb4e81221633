-- One row per project x model x estimand x group x estimator: the sums of the group's
-- units (macro ppi_moments) and what the estimators make of them, as ppi_py 0.2.3
-- computes them for a mean (ppi_mean_pointestimate, ppi_mean_ci, weights normalized to
-- sum n; docs/analysts.md, "How sure is the answer"):
--   naive      mean(ah) / mean(bh) over all n + N units, unweighted: predictions only
--   classical  lam = 0: the evaluation labels only
--   ppi        PPI++: lam estimated from the data as ppi_py's _calc_lam_glm does (at the
--              lam = 1 estimate), clipped to [0, 1]; 0 where the predictions do not vary
-- A ratio (is_ratio = 1) is mean(a) / mean(b) with each mean estimated with the same
-- lam, and its variance by the delta method: the variance of a - R b (R the estimate)
-- divided by mean(b)^2; lam is tuned on a - R1 b, R1 the lam = 1 ratio.
-- r_lin, m_den and lam_used are what answer_differences needs to combine two groups.
-- Classical and ppi rows need at least 2 labeled units in the group (units with b not
-- 0; for a mean, the group's labeled units); ppi rows need an unlabeled unit too.
with moments as (
    select
        project_id, model_id, mart, estimand, estimand_label, is_ratio, shared_units, grp,
        sum(case when is_labeled = 1 and y_den <> 0 then 1 else 0 end) as group_labels,
        {{ ppi_moments() }}
    from {{ ref('int_answer_units') }}
    group by project_id, model_id, mart, estimand, estimand_label, is_ratio, shared_units, grp
),

counted as (
    select
        *,
        cast(n_labeled as {{ dbt.type_float() }}) as nl,
        cast(n_unlabeled as {{ dbt.type_float() }}) as nu,
        {{ ppi_mean('1.0', 'a', 'ah') }} as mu_a1,
        {{ ppi_mean('1.0', 'b', 'bh') }} as mu_b1
    from moments
),

centered as (
    select
        *,
        mu_a1 - r1 * mu_b1 as c1
    from (
        select *, case when is_ratio = 1 then mu_a1 / nullif(mu_b1, 0) else 0.0 end as r1
        from counted
    ) as r
),

{#- the gradients of ppi_py's power tuning at the lam = 1 estimate: w (T - c1) on the
    labels and w (That - c1) on the predictions, T = a - r1 b -#}
{%- set g = {'one': '-c1', 'a': '1.0', 'b': '-r1'} %}
{%- set gh = {'one': '-c1', 'ah': '1.0', 'bh': '-r1'} %}
tuning as (
    select
        *,
        {{ ppi_cov(g, gh, 'nl', 's_one', 's', 'q') }} as lam_num,
        ((nl / nullif(s_one, 0)) * {{ ppi_linear(gh, 's') }}
            + (nu / nullif(su_one, 0)) * {{ ppi_linear(gh, 'su') }}) as z_sum,
        ((nl / nullif(s_one, 0)) * (nl / nullif(s_one, 0)) * {{ ppi_bilinear(gh, gh, 'q') }}
            + (nu / nullif(su_one, 0)) * (nu / nullif(su_one, 0)) * {{ ppi_bilinear(gh, gh, 'qu') }}) as z_squares
    from centered
),

tuned as (
    select
        *,
        case
            when lam_raw is null or lam_raw < 0 then 0.0
            when lam_raw > 1 then 1.0
            else lam_raw
        end as lam_tuned
    from (
        select
            *,
            lam_num / nullif((1.0 + nl / nullif(nu, 0))
                * z_spread / nullif(nl + nu - 1.0, 0), 0) as lam_raw
        from (
            {#- predictions that do not vary leave only rounding noise in the spread (sum of
                squares less the squared sum): lam is 0 there, not noise over noise -#}
            select
                *,
                case
                    when z_squares - z_sum * z_sum / (nl + nu) <= 1e-10 * abs(z_squares) then 0.0
                    else z_squares - z_sum * z_sum / (nl + nu)
                end as z_spread
            from tuning
        ) as spread
    ) as raw
),

labeled_estimators as (
    select *, cast('classical' as {{ dbt.type_string() }}) as estimator, 0.0 as lam_used
    from tuned
    where group_labels >= 2
    union all
    select *, cast('ppi' as {{ dbt.type_string() }}) as estimator, lam_tuned as lam_used
    from tuned
    where group_labels >= 2 and n_unlabeled >= 1
),

labeled_means as (
    select
        *,
        case when is_ratio = 1 then mu_a / nullif(mu_b, 0) else mu_a end as estimate
    from (
        select
            *,
            {{ ppi_mean('lam_used', 'a', 'ah') }} as mu_a,
            {{ ppi_mean('lam_used', 'b', 'bh') }} as mu_b
        from labeled_estimators
    ) as means
),

{%- set k = {'a': '1.0', 'ah': '-lam_used', 'b': '-r_lin', 'bh': 'lam_used * r_lin'} %}
{%- set ku = {'ah': 'lam_used', 'bh': '-lam_used * r_lin'} %}
labeled_variances as (
    select
        *,
        {{ nonnegative(ppi_cov(k, k, 'nl', 's_one', 's', 'q')) }} / (mu_b * mu_b) as rectifier_var,
        case when lam_used = 0 then 0.0
            else {{ nonnegative(ppi_cov(ku, ku, 'nu', 'su_one', 'su', 'qu')) }} / (mu_b * mu_b)
        end as imputed_var
    from (
        select *, case when is_ratio = 1 then estimate else 0.0 end as r_lin
        from labeled_means
        where mu_b <> 0
    ) as linearized
),

naive as (
    select
        *,
        case when is_ratio = 1 then estimate else 0.0 end as r_lin
    from (
        select *, t_ah / nullif(t_bh, 0) as estimate, t_bh / nullif(t_one, 0) as m_den
        from counted
    ) as predicted
    where t_bh <> 0
),

{%- set kn = {'ah': '1.0', 'bh': '-r_lin'} %}
estimators as (
    select
        project_id, model_id, mart, estimand, estimand_label, is_ratio, shared_units, grp,
        estimator, n_labeled, n_unlabeled, group_labels,
        estimate, lam_used, lam_used as lam, r_lin, mu_b as m_den,
        rectifier_var, imputed_var,
        sqrt(rectifier_var / nl + case when imputed_var = 0 then 0.0 else imputed_var / nu end) as std_error
    from labeled_variances
    union all
    select
        project_id, model_id, mart, estimand, estimand_label, is_ratio, shared_units, grp,
        cast('naive' as {{ dbt.type_string() }}), n_labeled, n_unlabeled, group_labels,
        estimate, null, null, r_lin, m_den,
        null,
        {{ nonnegative(ppi_cov(kn, kn, 't_one', 't_one', 't', 'tq')) }} / (m_den * m_den),
        sqrt({{ nonnegative(ppi_cov(kn, kn, 't_one', 't_one', 't', 'tq')) }} / (m_den * m_den) / t_one)
    from naive
)

select
    {{ grain_key(['e.project_id', 'e.model_id', 'e.estimand', 'e.grp', 'e.estimator']) }} as estimator_key,
    e.*,
    m.s_one, m.s_a, m.s_ah, m.s_b, m.s_bh, m.su_one, m.su_ah, m.su_bh, m.t_one, m.t_ah, m.t_bh
    {%- for x in ppi_components('labeled') %}{% for y in ppi_components('labeled')[loop.index0:] %},
    m.q_{{ x }}_{{ y }}
    {%- endfor %}{% endfor %}
    {%- for x in ppi_components('unlabeled') %}{% for y in ppi_components('unlabeled')[loop.index0:] %},
    m.qu_{{ x }}_{{ y }}, m.tq_{{ x }}_{{ y }}
    {%- endfor %}{% endfor %}
from estimators as e
inner join moments as m
    on m.project_id = e.project_id and m.model_id = e.model_id
    and m.estimand = e.estimand and m.grp = e.grp
