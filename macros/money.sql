{#- Money helpers for the example project.

    Orders carry the gross `amount` and an optional `discount` (empty when no
    discount code was used, so it is NULL in SQL). Every revenue measure uses
    net() so the definition of "net revenue" lives in one place. -#}

{% macro net(amount, discount) -%}
({{ amount }} - coalesce({{ discount }}, 0))
{%- endmacro %}

