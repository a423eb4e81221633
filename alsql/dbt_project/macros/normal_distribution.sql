{#- The standard normal distribution in SQL, on every backend (exp, sqrt, abs and the
    natural logarithm of macro ln only): the complementary error function, the normal
    CDF, the two-sided p-value of a z statistic, and the normal quantile. The answer
    marts use them for confidence intervals and tests (docs/analysts.md, "How sure is
    the answer").

    Pass a column or a short expression: each macro repeats its argument many times in
    the SQL it writes. -#}

{#- Polynomial in Horner form: coefs[0] + coefs[1] x + ... (coefs as float literals). -#}
{% macro _horner(x, coefs) -%}
  {%- set ns = namespace(sql=coefs[-1] | string) -%}
  {%- for c in coefs[:-1] | reverse -%}
    {%- set ns.sql = '(' ~ (c | string) ~ ' + (' ~ x ~ ') * ' ~ ns.sql ~ ')' -%}
  {%- endfor -%}
  {{ ns.sql }}
{%- endmacro %}

{#- erfc(t), W. J. Cody's rational Chebyshev approximations (Math. Comp. 1969, the
    coefficients of his CALERF): relative error below 2e-15 against a reference erfc.
    Three ranges of |t|: up to 0.46875 erf by a rational function of t^2; up to 4
    exp(-t^2) times a rational function of |t|; beyond, exp(-t^2) / |t| times
    (1/sqrt(pi) - a rational function of 1/t^2). 0 where |t| >= 26 (erfc < 1e-295:
    PostgreSQL refuses exp() of a number that small). -#}
{% macro erfc(t) -%}
  {%- set y = 'abs(' ~ t ~ ')' -%}
  {%- set s = '(' ~ y ~ ' * ' ~ y ~ ')' -%}
  {%- set r = '(1.0 / (' ~ y ~ ' * ' ~ y ~ '))' -%}
  {#- numerator and denominator coefficients, lowest power first -#}
  {%- set a = ['3.20937758913846947e03', '3.77485237685302021e02', '1.13864154151050156e02',
               '3.16112374387056560e00', '1.85777706184603153e-1'] -%}
  {%- set b = ['2.84423683343917062e03', '1.28261652607737228e03', '2.44024637934444173e02',
               '2.36012909523441209e01', '1.0'] -%}
  {%- set c = ['1.23033935479799725e03', '2.05107837782607147e03', '1.71204761263407058e03',
               '8.81952221241769090e02', '2.98635138197400131e02', '6.61191906371416295e01',
               '8.88314979438837594e00', '5.64188496988670089e-1', '2.15311535474403846e-8'] -%}
  {%- set d = ['1.23033935480374942e03', '3.43936767414372164e03', '4.36261909014324716e03',
               '3.29079923573345963e03', '1.62138957456669019e03', '5.37181101862009858e02',
               '1.17693950891312499e02', '1.57449261107098347e01', '1.0'] -%}
  {%- set p = ['6.58749161529837803e-4', '1.60837851487422766e-2', '1.25781726111229246e-1',
               '3.60344899949804439e-1', '3.05326634961232344e-1', '1.63153871373020978e-2'] -%}
  {%- set q = ['2.33520497626869185e-3', '6.05183413124413191e-2', '5.27905102951428412e-1',
               '1.87295284992346725e00', '2.56852019228982242e00', '1.0'] -%}
  (case
    when {{ y }} <= 0.46875 then
      1.0 - ({{ t }}) * {{ _horner(s, a) }} / {{ _horner(s, b) }}
    else
      (case when ({{ t }}) < 0 then 2.0 else 0.0 end)
      + (case when ({{ t }}) < 0 then -1.0 else 1.0 end) * (case
        when {{ y }} >= 26 then 0.0
        when {{ y }} <= 4 then
          exp(-{{ s }}) * {{ _horner(y, c) }} / {{ _horner(y, d) }}
        else
          exp(-{{ s }}) / {{ y }} * (5.6418958354775628695e-1
            - {{ r }} * {{ _horner(r, p) }} / {{ _horner(r, q) }})
      end)
  end)
{%- endmacro %}

{#- P(Z <= x) for a standard normal Z. -#}
{% macro normal_cdf(x) -%}
  (0.5 * {{ erfc('-(' ~ x ~ ') * 0.70710678118654752440') }})
{%- endmacro %}

{#- Two-sided p-value of a z statistic: P(|Z| >= |z|) = erfc(|z| / sqrt(2)). -#}
{% macro normal_two_sided_p(z) -%}
  {{ erfc('abs(' ~ z ~ ') * 0.70710678118654752440') }}
{%- endmacro %}

{#- Acklam's rational approximation of the normal quantile (relative error below
    1.2e-9) for a probability p in (0, 1): a central region and two tails. -#}
{% macro _acklam_quantile(p) -%}
  {%- set a = ['2.506628277459239e00', '-3.066479806614716e01', '1.383577518672690e02',
               '-2.759285104469687e02', '2.209460984245205e02', '-3.969683028665376e01'] -%}
  {%- set b = ['1.0', '-1.328068155288572e01', '6.680131188771972e01', '-1.556989798598866e02',
               '1.615858368580409e02', '-5.447609879822406e01'] -%}
  {%- set c = ['2.938163982698783e00', '4.374664141464968e00', '-2.549732539343734e00',
               '-2.400758277161838e00', '-3.223964580411365e-01', '-7.784894002430293e-03'] -%}
  {%- set d = ['1.0', '3.754408661907416e00', '2.445134137142996e00', '3.224671290700398e-01',
               '7.784695709041462e-03'] -%}
  {%- set low = 'sqrt(-2.0 * ' ~ ln(p) ~ ')' -%}
  {%- set high = 'sqrt(-2.0 * ' ~ ln('1.0 - (' ~ p ~ ')') ~ ')' -%}
  {%- set qc = '((' ~ p ~ ') - 0.5)' -%}
  {%- set rc = '(' ~ qc ~ ' * ' ~ qc ~ ')' -%}
  (case
    when ({{ p }}) < 0.02425 then {{ _horner(low, c) }} / {{ _horner(low, d) }}
    when ({{ p }}) > 0.97575 then -{{ _horner(high, c) }} / {{ _horner(high, d) }}
    else {{ qc }} * {{ _horner(rc, a) }} / {{ _horner(rc, b) }}
  end)
{%- endmacro %}

{#- A query of one row and one column z: the normal quantile of p (a literal or an
    expression without columns, 0 < p < 1): Acklam's approximation refined by one Halley
    step on the CDF above, which brings it to the accuracy of erfc (about 1e-15). Above
    0.5 it is minus the quantile of 1 - p, so the step works on the lower tail, where the
    CDF keeps its relative accuracy. -#}
{% macro normal_quantile_query(p) -%}
select case when p > 0.5 then -(x - u / (1.0 + x * u / 2.0)) else x - u / (1.0 + x * u / 2.0) end as z
from (
    select p, x, ({{ normal_cdf('x') }} - q) * 2.50662827463100050242 * exp(x * x / 2.0) as u
    from (
        select p, q, {{ _acklam_quantile('q') }} as x
        from (
            select p, case when p > 0.5 then 1.0 - p else p end as q
            from (select cast({{ p }} as {{ dbt.type_float() }}) as p) as given
        ) as lower_tail
    ) as first_guess
) as refined
{%- endmacro %}
