"""Which methods the API serves at a path: what a wrong method is answered with (405 and `Allow`)."""

from __future__ import annotations

from jobsync.api.routes import ROUTES, Route


def _is_parameter(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


def _matches(template: str, path: str) -> bool:
    # `{name}` stands for exactly one non-empty segment, as at API Gateway; an empty segment or a
    # trailing slash makes another path.
    wanted = template.split("/")
    given = path.split("/")
    return len(wanted) == len(given) and all(
        part == segment or (_is_parameter(part) and segment != "") for part, segment in zip(wanted, given, strict=True)
    )


def _specificity(template: str) -> tuple[bool, ...]:
    # At the first segment where two templates differ, a literal is more specific than a parameter.
    return tuple(not _is_parameter(part) for part in template.split("/"))


def allowed_methods(path: str, routes: tuple[Route, ...] = ROUTES) -> list[str]:
    """The methods of the resource at `path`, sorted; empty when no route's template matches it.

    The resource is the one the most specific matching template describes, as in the OpenAPI
    document: `/api/cloud/jobs/sync` is the sync action (POST), not a job called "sync".
    """
    matching = [route for route in routes if _matches(route.path, path)]
    if not matching:
        return []
    best = max(_specificity(route.path) for route in matching)
    return sorted({route.method for route in matching if _specificity(route.path) == best})
