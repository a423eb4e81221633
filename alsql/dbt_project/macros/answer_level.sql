{#- var('answer_level'), the confidence level of the answer marts' intervals (0.95 unless
    set), checked to lie strictly between 0 and 1; returned as a float literal. -#}
{% macro answer_level() -%}
  {%- set raw = var('answer_level', 0.95) -%}
  {%- set level = raw | float(-1) -%}
  {%- if not (0 < level < 1) -%}
    {{ exceptions.raise_compiler_error("var answer_level: expected a number between 0 and 1 (e.g. 0.95), got " ~ raw) }}
  {%- endif -%}
  {{ return(level) }}
{%- endmacro %}

{#- The normal quantile of the two-sided interval at answer_level(), one row and column z. -#}
{% macro answer_quantile_query() -%}
  {{ normal_quantile_query('1.0 - (1.0 - ' ~ answer_level() ~ ') / 2.0') }}
{%- endmacro %}
