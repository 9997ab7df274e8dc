"""Which packages the wheel holds and where each comes from; everything else is in pyproject.toml.

Three source roots, one package each (with its subpackages): lambdas/sparkscale, tools/sparkscale_tools and
infra/sparkscale_cdk. Three folders travel as data of the package that reads them, so the construct and
`sparkscale heap-agent-bundle` work from an installed wheel as from a checkout:
- lambdas/handlers -> sparkscale_cdk/_lambda_handlers (the construct stages the Lambda asset from it);
- bootstrap/ -> sparkscale/agent/_bootstrap (the agent bundle's install script and Spark metrics settings);
- data/traces -> sparkscale_tools/_traces (the bundled traces; the demo's default is one of them).
Neither becomes a top-level package: a wheel that installed `handlers` would collide with any other that did.
"""

from setuptools import find_packages, setup

ROOTS = {"lambdas": "sparkscale", "tools": "sparkscale_tools", "infra": "sparkscale_cdk"}
DATA_PACKAGES = {
    "sparkscale_cdk._lambda_handlers": "lambdas/handlers",
    "sparkscale.agent._bootstrap": "bootstrap",
    "sparkscale_tools._traces": "data/traces",
}

packages: list[str] = []
package_dir: dict[str, str] = {}
for root, top in ROOTS.items():
    for name in find_packages(root, include=[top, f"{top}.*"]):
        packages.append(name)
        package_dir[name] = f"{root}/{name.replace('.', '/')}"
packages += DATA_PACKAGES
package_dir.update(DATA_PACKAGES)

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={
        "sparkscale.agent._bootstrap": ["*.sh", "*.json"],
        "sparkscale_tools._traces": ["*.csv", "*.md"],
    },
)
