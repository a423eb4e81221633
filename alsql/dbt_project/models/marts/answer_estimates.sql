-- One row per project x latest model x estimand x group x estimator: the analyst's answer
-- on the TRUE classes with a confidence interval at var('answer_level') (0.95 unless
-- set), from int_answer_estimators (docs/analysts.md, "How sure is the answer"):
--   naive      predictions only (ignores the model's errors)
--   classical  the evaluation labels only
--   ppi        prediction-powered (PPI++ with power tuning): labels and predictions
-- ci = estimate +- z * std_error, z the normal quantile computed in SQL. A group with
-- fewer than 2 evaluation labels has no classical or ppi row.
with quantile as (
    {{ answer_quantile_query() }}
)

select
    e.project_id,
    p.project_name,
    e.model_id,
    e.mart,
    e.estimand,
    e.estimand_label,
    e.grp,
    e.estimator,
    e.estimate,
    e.estimate - q.z * e.std_error as ci_low,
    e.estimate + q.z * e.std_error as ci_high,
    e.std_error,
    cast({{ answer_level() }} as {{ dbt.type_float() }}) as level,
    e.n_labeled,
    e.n_unlabeled,
    e.lam,
    e.rectifier_var,
    e.imputed_var
from {{ ref('int_answer_estimators') }} as e
inner join {{ ref('stg_projects') }} as p on p.project_id = e.project_id
cross join quantile as q
