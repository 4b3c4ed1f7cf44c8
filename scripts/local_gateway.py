"""A loopback stand-in for API Gateway (HTTP API) for `make dev` and
`make test`: the routes, authorizers and functions come from the SAM
templates, never from this file, so a route added to a template is served
with no change here.

Each request is routed as an HTTP API routes it (most specific path, exact
method over ANY), authorized as the route's authorizer would (JWT
authorizer or Lambda authorizer, payload 2.0), turned into a payload 2.0
event and sent to the function through the Lambda Invoke API that `cargo
lambda watch` serves; the function's answer is turned back into HTTP.

usage: local_gateway.py --port 3000 --invoke-port 9000 \\
           --template template.yaml \\
           --template examples/protected-api/template.yaml \\
           --issuer-key .run/dev-issuer.pem [--parameter Name=Value ...] \\
           [--max-in-flight 8] [--queue-timeout 30] [--invoke-timeout 30]

`--template PATH[:STACK]`: the first template's stack is `tollgate`, the
second's `tollgate-demo`, then `tollgate-3`, ... (the names Fn::ImportValue
and ${AWS::StackName} see). `--parameter` overrides a template parameter's
Default in every template that declares it, like `sam local
--parameter-overrides`; JwtIssuer and JwtAudience default to the local
development issuer's (scripts/dev_issuer.py).

At most --max-in-flight invocations per function run at once; a request
that waits longer than --queue-timeout for one answers 503, an invocation
longer than --invoke-timeout (or the event's TimeoutInMillis) 504, as API
Gateway would. One line per request goes to stderr: method, path, status,
milliseconds (never headers, query strings or bodies: they hold secrets).

Development only: an `X-Owner: NAME` header passes any JWT-authorized route
as the subject NAME.
"""
import argparse
import base64
import binascii
import http.client
import http.cookies
import json
import os
import re
import socket
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote

import jwt
import yaml

# scripts/ is on the path when run as a file; also when imported (tests).
# (No `import secrets` anywhere here: scripts/secrets.py would shadow it.)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dev_issuer  # noqa: E402  (the issuer's constants live there)

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
STAGE = "$default"
DOMAIN_NAME = "127.0.0.1"
DEFAULT_STACK_NAMES = ["tollgate", "tollgate-demo"]
# The example app's TollgateOwners and TollgateIssuer have no Default (a
# deployment names its owners and its Tollgate's URL); locally it accepts
# the development issuer's alice, and capabilities issued by `make dev`'s
# gateway (make test passes its own URL).
GATEWAY_PARAMETER_DEFAULTS = {"JwtIssuer": dev_issuer.ISSUER, "JwtAudience": dev_issuer.AUDIENCE,
                              "TollgateOwners": "alice", "TollgateIssuer": "http://127.0.0.1:3000"}
PAYLOAD_LIMIT = 10 * 1024 * 1024  # API Gateway's request payload quota
DEFAULT_TTL = 300  # SAM's ReauthorizeEvery default
# Headers about one hop, never passed from a function's answer to the client.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
              "te", "trailer", "trailers", "transfer-encoding", "upgrade", "content-length"}


class TemplateError(Exception):
    """A template the gateway cannot serve faithfully: reported at start."""


# --------------------------------------------------------------------------
# Templates: YAML with CloudFormation short tags, and intrinsic functions.

class CfnLoader(yaml.SafeLoader):
    """YAML whose CloudFormation short forms (!Ref, !Sub, ...) load as the
    long forms ({"Ref": ...}, {"Fn::Sub": ...})."""


def _short_form(tag):
    long_name = tag if tag in ("Ref", "Condition") else "Fn::" + tag

    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {long_name: value}
    return construct


for _tag in ("Ref", "Sub", "GetAtt", "ImportValue", "If", "Join", "Select", "Equals", "Not",
             "FindInMap", "Base64", "Split", "GetAZs", "Condition", "And", "Or", "Cidr"):
    CfnLoader.add_constructor("!" + _tag, _short_form(_tag))

NO_VALUE = object()  # AWS::NoValue: the property is dropped


def lambda_arn(function_name):
    return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"


class Stack:
    """One loaded template under a stack name, with CloudFormation's
    intrinsic functions evaluated the way a deployment would see them (the
    physical name of a function is its cargo-lambda binary: that is what
    `cargo lambda watch` serves)."""

    def __init__(self, path, name, parameters, registry):
        self.path, self.name, self.registry = path, name, registry
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=CfnLoader) or {}
        self.parameters = doc.get("Parameters") or {}
        self.resources = doc.get("Resources") or {}
        self.outputs = doc.get("Outputs") or {}
        self.conditions = doc.get("Conditions") or {}
        self.mappings = doc.get("Mappings") or {}
        self.globals = doc.get("Globals") or {}
        self.overrides = {k: v for k, v in parameters.items() if k in self.parameters}
        self._condition_values = {}
        self._intrinsics = {
            "Ref": self.ref, "Fn::GetAtt": self._get_att, "Fn::Sub": self._sub,
            "Fn::Join": self._join, "Fn::Select": self._select, "Fn::Split": self._split,
            "Fn::If": self._if, "Fn::Equals": self._equals, "Fn::Not": self._not,
            "Fn::And": lambda a: all(self.resolve(c) for c in a),
            "Fn::Or": lambda a: any(self.resolve(c) for c in a),
            "Condition": self.condition, "Fn::FindInMap": self._find_in_map,
            "Fn::Base64": lambda a: base64.b64encode(str(self.resolve(a)).encode()).decode(),
            "Fn::GetAZs": lambda a: [f"{REGION}a", f"{REGION}b", f"{REGION}c"],
            "Fn::ImportValue": lambda a: self.registry.import_value(self.resolve(a), self),
        }

    def __str__(self):
        return f"{self.path} (stack {self.name})"

    def resolve(self, value):
        if isinstance(value, list):
            return [v for v in map(self.resolve, value) if v is not NO_VALUE]
        if isinstance(value, dict):
            if len(value) == 1:
                (key, arg), = value.items()
                if key in self._intrinsics:
                    return self._intrinsics[key](arg)
            resolved = ((k, self.resolve(v)) for k, v in value.items())
            return {k: v for k, v in resolved if v is not NO_VALUE}
        return value

    def resolve_str(self, value, what):
        v = self.resolve(value)
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise TemplateError(f"{self}: {what} does not resolve to a string: {v!r}")
        return str(v)

    def ref(self, name):
        pseudo = {
            "AWS::StackName": self.name, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": NO_VALUE,
            "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{self.name}/local",
            "AWS::NotificationARNs": [],
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            decl = self.parameters[name] or {}
            if name in self.overrides:
                value = self.overrides[name]
            elif "Default" in decl:
                value = decl["Default"]
            else:
                raise TemplateError(f"{self}: parameter {name} has no Default; "
                                    f"pass --parameter {name}=VALUE")
            kind = str(decl.get("Type", "String"))
            if isinstance(value, str) and (kind == "CommaDelimitedList" or kind.startswith("List<")):
                return [v.strip() for v in value.split(",")]
            return value
        if name in self.resources:
            return self.physical_id(name)
        raise TemplateError(f"{self}: Ref to {name!r}, which is no parameter or resource")

    def physical_id(self, logical):
        kind = self.resource_type(logical)
        if kind == "AWS::Serverless::Function":
            return self.binary(logical)
        if kind == "AWS::Serverless::HttpApi":
            return logical.lower()
        return logical

    def resource_type(self, logical):
        return (self.resources.get(logical) or {}).get("Type")

    def binary(self, logical):
        """The function's name under `cargo lambda watch`."""
        meta = (self.resources.get(logical) or {}).get("Metadata") or {}
        binary = (meta.get("BuildProperties") or {}).get("Binary")
        if not binary:
            raise TemplateError(f"{self}: function {logical} has no Metadata.BuildProperties.Binary, "
                                f"so the local gateway cannot tell which binary serves it")
        return self.resolve_str(binary, f"{logical} Metadata.BuildProperties.Binary")

    def _get_att(self, arg):
        logical, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
        logical, attr = self.resolve(logical), self.resolve(attr)
        kind = self.resource_type(logical)
        if kind is None:
            raise TemplateError(f"{self}: Fn::GetAtt on {logical!r}, which is no resource")
        if kind == "AWS::Serverless::Function" and attr == "Arn":
            return lambda_arn(self.binary(logical))
        if attr == "Arn":
            service = kind.split("::")[1].lower() if kind.count("::") == 2 else "local"
            return f"arn:aws:{service}:{REGION}:{ACCOUNT_ID}:{logical}"
        return f"{logical}.{attr}"

    def _sub(self, arg):
        text, variables = (arg[0], self.resolve(arg[1])) if isinstance(arg, list) else (arg, {})

        def substitute(m):
            inner = m.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                value = variables[inner]
            elif "." in inner and "::" not in inner:
                value = self._get_att(inner)
            else:
                value = self.ref(inner)
            return json.dumps(value) if isinstance(value, bool) else str(value)
        return re.sub(r"\$\{([^}]*)\}", substitute, text)

    def _join(self, arg):
        delimiter, items = arg
        return str(delimiter).join(str(x) for x in self.resolve(items))

    def _select(self, arg):
        index, items = arg
        return self.resolve(items)[int(self.resolve(index))]

    def _split(self, arg):
        delimiter, text = arg
        return str(self.resolve(text)).split(delimiter)

    def _if(self, arg):
        name, if_true, if_false = arg
        return self.resolve(if_true if self.condition(name) else if_false)

    def _equals(self, arg):
        a, b = (self.resolve(x) for x in arg)
        return str(a) == str(b) if not isinstance(a, (list, dict)) else a == b

    def _not(self, arg):
        return not self.resolve(arg[0] if isinstance(arg, list) else arg)

    def condition(self, name):
        if name not in self._condition_values:
            if name not in self.conditions:
                raise TemplateError(f"{self}: unknown condition {name!r}")
            self._condition_values[name] = bool(self.resolve(self.conditions[name]))
        return self._condition_values[name]

    def _find_in_map(self, arg):
        name, top, second = (self.resolve(x) for x in arg)
        try:
            return self.mappings[name][top][second]
        except (KeyError, TypeError):
            raise TemplateError(f"{self}: Fn::FindInMap {name}/{top}/{second} is not in Mappings") from None


class Registry:
    """Every loaded stack, for Fn::ImportValue across templates."""

    def __init__(self):
        self.stacks = []
        self._exports = None  # {name: (stack, unresolved value)}, computed once
        self._computing = False

    def exports(self):
        if self._exports is None:
            if self._computing:
                raise TemplateError("an Export.Name depends on an Fn::ImportValue")
            self._computing = True
            found = {}
            for stack in self.stacks:
                for out_name, out in stack.outputs.items():
                    export = (out or {}).get("Export")
                    if not export:
                        continue
                    name = stack.resolve_str(export.get("Name"), f"Outputs.{out_name}.Export.Name")
                    if name in found:
                        raise TemplateError(f"export {name!r} is defined twice: "
                                            f"{found[name][0]} and {stack}")
                    found[name] = (stack, out.get("Value"))
            self._exports = found
        return self._exports

    def import_value(self, name, importer):
        exports = self.exports()
        if name not in exports:
            known = ", ".join(sorted(exports)) or "none"
            raise TemplateError(f"{importer}: Fn::ImportValue {name!r}: no loaded template exports it "
                                f"(exports: {known}); pass the exporting template with --template")
        stack, value = exports[name]
        return stack.resolve(value)


# --------------------------------------------------------------------------
# Authorizers and routes, read from AWS::Serverless::HttpApi and the
# HttpApi events of AWS::Serverless::Function.

@dataclass
class JwtAuthorizer:
    key: tuple  # (stack, api, name): identifies it in logs and caches
    issuer: str
    audiences: list
    source: tuple  # ("header", name) or ("query", name)
    scopes: list = None  # AuthorizationScopes: the default for its routes


@dataclass
class LambdaAuthorizer:
    key: tuple
    function: str
    simple: bool
    sources: list  # [("header", name) | ("query", name)]
    ttl: int


def parse_identity_source(expr, where):
    m = re.fullmatch(r"\$request\.(header|querystring)\.(.+)", str(expr).strip())
    if not m:
        raise TemplateError(f"{where}: identity source {expr!r} is not supported locally "
                            f"(only $request.header.NAME and $request.querystring.NAME)")
    kind, name = m.groups()
    return ("header", name.lower()) if kind == "header" else ("query", name)


def build_authorizer(stack, api, name, props):
    where = f"{stack}: {api}.Auth.Authorizers.{name}"
    key = (stack.name, api, name)
    props = props or {}
    if "JwtConfiguration" in props:
        config = {k.lower(): v for k, v in (stack.resolve(props["JwtConfiguration"]) or {}).items()}
        if not config.get("issuer"):
            raise TemplateError(f"{where}: JwtConfiguration has no issuer")
        audiences = config.get("audience") or []
        audiences = [str(a) for a in (audiences if isinstance(audiences, list) else [audiences])]
        source = stack.resolve(props.get("IdentitySource", "$request.header.Authorization"))
        if isinstance(source, list):
            if len(source) != 1:
                raise TemplateError(f"{where}: a JWT authorizer takes one identity source")
            source = source[0]
        scopes = stack.resolve(props.get("AuthorizationScopes"))
        return JwtAuthorizer(key, str(config["issuer"]), audiences,
                             parse_identity_source(source, where), scopes or None)
    if "FunctionArn" in props:
        arn = stack.resolve_str(props["FunctionArn"], f"{api}.Auth.Authorizers.{name}.FunctionArn")
        m = re.fullmatch(r"arn:[^:]+:lambda:[^:]*:[^:]*:function:([^:]+)(:[^:]+)?", arn)
        if not m:
            raise TemplateError(f"{where}: FunctionArn {arn!r} names no local function")
        version = str(stack.resolve(props.get("AuthorizerPayloadFormatVersion")))
        if version != "2.0":
            raise TemplateError(f"{where}: AuthorizerPayloadFormatVersion {version!r} is not "
                                f"supported locally (only \"2.0\")")
        identity = stack.resolve(props.get("Identity")) or {}
        unsupported = [k for k in ("Context", "StageVariables") if identity.get(k)]
        if unsupported:
            raise TemplateError(f"{where}: Identity.{unsupported[0]} is not supported locally")
        sources = [("header", h.lower()) for h in identity.get("Headers") or []]
        sources += [("query", q) for q in identity.get("QueryStrings") or []]
        simple = stack.resolve(props.get("EnableSimpleResponses", False))
        return LambdaAuthorizer(key, m.group(1), simple in (True, "true", "True"),
                                sources or [("header", "authorization")],
                                int(identity.get("ReauthorizeEvery", DEFAULT_TTL)))
    raise TemplateError(f"{where}: neither JwtConfiguration nor FunctionArn (IAM authorization "
                        f"is not supported locally)")


@dataclass
class Api:
    stack: Stack
    logical_id: str
    api_id: str
    authorizers: dict
    default: object  # the authorizer of routes that name none, or None
    stage_variables: dict = field(default_factory=dict)  # the stage's StageVariables, resolved


def load_api(stack, logical, props):
    props = dict(props or {})
    for k, v in (stack.globals.get("HttpApi") or {}).items():
        props.setdefault(k, v)
    for k in ("DefinitionBody", "DefinitionUri"):
        if k in props:
            raise TemplateError(f"{stack}: {logical}.{k}: OpenAPI-defined routes are not supported "
                                f"locally; declare HttpApi events on the functions")
    auth = props.get("Auth") or {}  # its parts are resolved where they are read
    if auth.get("EnableIamAuthorizer"):
        raise TemplateError(f"{stack}: {logical}.Auth.EnableIamAuthorizer is not supported locally")
    authorizers = {name: build_authorizer(stack, logical, name, p)
                   for name, p in (auth.get("Authorizers") or {}).items()}
    default = auth.get("DefaultAuthorizer")
    default = stack.resolve(default) if default is not None else None
    if default is not None and default not in authorizers:
        raise TemplateError(f"{stack}: {logical}.Auth.DefaultAuthorizer {default!r} is not "
                            f"one of its Authorizers")
    variables = stack.resolve(props.get("StageVariables") or {})
    if not isinstance(variables, dict):
        raise TemplateError(f"{stack}: {logical}.StageVariables must be a map")
    variables = {str(k): str(v) for k, v in variables.items()}
    for k, v in variables.items():
        # API Gateway refuses other names and values (an empty value too);
        # an empty one here stands for a stage that states nothing.
        if not re.fullmatch(r"[A-Za-z0-9_]+", k) or not re.fullmatch(r"[A-Za-z0-9\-._~:/?#&=,]*", v):
            raise TemplateError(f"{stack}: {logical}.StageVariables.{k}: {v!r} is not a value "
                                f"API Gateway accepts ([A-Za-z0-9-._~:/?#&=,]+)")
    variables = {k: v for k, v in variables.items() if v}
    return Api(stack, logical, logical.lower(), authorizers, authorizers.get(default), variables)


@dataclass
class Route:
    method: str  # an upper-case method, or ANY
    path: str  # the path template, or $default
    function: str
    api: Api
    authorizer: object  # JwtAuthorizer, LambdaAuthorizer or None
    scopes: list  # a JWT route's AuthorizationScopes (None: any token)
    timeout: float
    source: str  # where it is declared, for messages
    segments: list = field(default_factory=list)  # [(kind, value)]: literal, param, greedy

    @property
    def route_key(self):
        return self.path if self.path == "$default" else f"{self.method} {self.path}"

    def shape(self):
        """What makes two routes the same route (names of variables aside)."""
        return self.method, self.path if self.path == "$default" else tuple(
            (kind, value if kind == "literal" else "") for kind, value in self.segments)

    def specificity(self):
        """Lower sorts first: literal segments before {param} before
        {greedy+}, then an exact method before ANY; $default last."""
        if self.path == "$default":
            return ((3,), 1)
        rank = {"literal": 0, "param": 1, "greedy": 2}
        return tuple(rank[kind] for kind, _ in self.segments), int(self.method == "ANY")

    def match(self, method, parts):
        """The path parameters when this route serves the request, else None."""
        if self.method not in ("ANY", method):
            return None
        if self.path == "$default":
            return {}
        params = {}
        for i, (kind, value) in enumerate(self.segments):
            if kind == "greedy":
                rest = "/".join(parts[i:])
                if i >= len(parts) or not rest:
                    return None
                params[value] = unquote(rest)
                return params
            if i >= len(parts):
                return None
            if kind == "literal" and unquote(parts[i]) != value:
                return None
            if kind == "param":
                if not parts[i]:
                    return None
                params[value] = unquote(parts[i])
        return params if len(parts) == len(self.segments) else None


def parse_path(path, where):
    if path == "$default":
        return []
    if not path.startswith("/"):
        raise TemplateError(f"{where}: Path {path!r} does not start with /")
    segments = []
    parts = path.split("/")[1:]
    for i, part in enumerate(parts):
        m = re.fullmatch(r"\{([A-Za-z0-9._-]+)(\+?)\}", part)
        if m and m.group(2):
            if i != len(parts) - 1:
                raise TemplateError(f"{where}: the greedy variable in {path!r} is not last")
            segments.append(("greedy", m.group(1)))
        elif m:
            segments.append(("param", m.group(1)))
        elif "{" in part or "}" in part:
            raise TemplateError(f"{where}: segment {part!r} of {path!r} is not a whole {{variable}}")
        else:
            segments.append(("literal", part))
    return segments


def function_routes(stack, logical, props, apis, default_timeout):
    """The routes of one function's HttpApi events."""
    routes = []
    for event_name, event in ((props or {}).get("Events") or {}).items():
        if (event or {}).get("Type") != "HttpApi":
            continue
        where = f"{stack}: {logical}.Events.{event_name}"
        ep = stack.resolve((event or {}).get("Properties") or {})
        api_ref = (event.get("Properties") or {}).get("ApiId")
        if api_ref is None:
            api_logical = "ServerlessHttpApi"  # SAM's implicit API
            if api_logical not in apis:
                apis[api_logical] = load_api(stack, api_logical, {})
        elif isinstance(api_ref, dict) and set(api_ref) == {"Ref"} and api_ref["Ref"] in apis:
            api_logical = api_ref["Ref"]
        else:
            raise TemplateError(f"{where}: ApiId must be a Ref to an AWS::Serverless::HttpApi "
                                f"of the same template, not {api_ref!r}")
        api = apis[api_logical]
        if str(ep.get("PayloadFormatVersion", "2.0")) != "2.0":
            raise TemplateError(f"{where}: only PayloadFormatVersion 2.0 is supported locally")
        path = str(ep.get("Path", "$default"))
        method = str(ep.get("Method", "ANY")).upper()
        auth = ep.get("Auth") or {}
        name = auth.get("Authorizer")
        if name == "NONE":
            authorizer = None
        elif name is None:
            authorizer = api.default
        elif name in api.authorizers:
            authorizer = api.authorizers[name]
        else:
            raise TemplateError(f"{where}: Auth.Authorizer {name!r} is not an authorizer of {api_logical}")
        scopes = auth.get("AuthorizationScopes")
        if isinstance(authorizer, JwtAuthorizer):
            scopes = scopes if scopes is not None else authorizer.scopes
        else:
            scopes = None
        timeout = ep.get("TimeoutInMillis")
        timeout = min(int(timeout) / 1000, default_timeout) if timeout else default_timeout
        route = Route(method, path, stack.binary(logical), api, authorizer, scopes or None,
                      timeout, where)
        route.segments = parse_path(path, where)
        routes.append(route)
    return routes


class RouteTable:
    def __init__(self, routes):
        self.routes = []
        seen = {}
        for route in routes:
            shape = route.shape()
            if shape in seen:
                raise TemplateError(f"route {route.route_key} is defined twice: "
                                    f"{seen[shape].source} and {route.source}")
            seen[shape] = route
            self.routes.append(route)
        self.routes.sort(key=Route.specificity)

    def find(self, method, raw_path):
        """(route, path parameters) for a request, or (None, None)."""
        parts = raw_path.split("/")[1:]
        for route in self.routes:  # most specific first
            params = route.match(method, parts)
            if params is not None:
                return route, params
        return None, None


def parse_template_arg(arg, index):
    path, sep, name = arg.rpartition(":")
    if not sep or not name or "/" in name or not path:
        path = arg
        name = DEFAULT_STACK_NAMES[index] if index < len(DEFAULT_STACK_NAMES) else f"tollgate-{index + 1}"
    return path, name


def load_routes(templates, parameters=None, default_timeout=30.0):
    """The route table of the templates [(path, stack name)]; parameters
    override Defaults (the gateway's own defaults included)."""
    merged = dict(GATEWAY_PARAMETER_DEFAULTS)
    merged.update(parameters or {})
    registry = Registry()
    for path, name in templates:
        registry.stacks.append(Stack(path, name, merged, registry))
    names = [s.name for s in registry.stacks]
    if len(set(names)) != len(names):
        raise TemplateError(f"two templates share a stack name: {names}")
    routes = []
    for stack in registry.stacks:
        apis = {logical: load_api(stack, logical, (res or {}).get("Properties"))
                for logical, res in stack.resources.items()
                if (res or {}).get("Type") == "AWS::Serverless::HttpApi"}
        for logical, res in stack.resources.items():
            if (res or {}).get("Type") == "AWS::Serverless::Function":
                routes += function_routes(stack, logical, res.get("Properties"), apis, default_timeout)
    return RouteTable(routes)


# --------------------------------------------------------------------------
# The Lambda Invoke API of `cargo lambda watch`.

class InvokeError(Exception):
    """status: what API Gateway answers for it."""
    status, message = 500, "Internal Server Error"


class InvokeBusy(InvokeError):
    status, message = 503, "Service Unavailable"


class InvokeTimeout(InvokeError):
    status, message = 504, "Endpoint request timed out"


class Invoker:
    """Invokes functions with at most `max_in_flight` invocations per
    function at once (the rest wait up to `queue_timeout`), over a small
    pool of persistent connections per function."""

    def __init__(self, port, max_in_flight, queue_timeout):
        self.port, self.max_in_flight, self.queue_timeout = port, max_in_flight, queue_timeout
        self._lock = threading.Lock()
        self._slots = {}
        self._idle = {}

    def invoke(self, function, event, timeout):
        """The function's payload (bytes); raises an InvokeError."""
        with self._lock:
            slots = self._slots.setdefault(function, threading.BoundedSemaphore(self.max_in_flight))
        if not slots.acquire(timeout=self.queue_timeout):
            raise InvokeBusy(f"{function}: no free slot in {self.queue_timeout:g} s")
        try:
            return self._call(function, json.dumps(event).encode(), timeout)
        finally:
            slots.release()

    def _call(self, function, body, timeout):
        path = f"/2015-03-31/functions/{function}/invocations"
        for attempt in range(2):
            conn, reused = self._checkout(function, timeout)
            try:
                conn.request("POST", path, body=body, headers={"content-type": "application/json"})
                resp = conn.getresponse()
                payload = resp.read()
            except (socket.timeout, TimeoutError):
                # The timeout bounds each wait for bytes; the Invoke API sends
                # its answer at once, so it bounds the invocation. The answer
                # may still come: this connection is spent.
                conn.close()
                raise InvokeTimeout(f"{function}: no answer in {timeout:g} s") from None
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                if reused and attempt == 0:
                    # An idle keep-alive connection the server had closed:
                    # once, on a fresh one. (A server that read the request
                    # and then died would see it twice: fine for development.)
                    continue
                raise InvokeError(f"{function}: {e!r}") from None
            except (OSError, http.client.HTTPException) as e:
                conn.close()
                raise InvokeError(f"{function}: {e!r}") from None
            if resp.will_close:
                conn.close()
            else:
                self._checkin(function, conn)
            if resp.status != 200 or resp.getheader("X-Amz-Function-Error"):
                raise InvokeError(f"{function}: invoke status {resp.status}, "
                                  f"function error {resp.getheader('X-Amz-Function-Error')!r}")
            return payload
        raise AssertionError("unreachable")

    def _checkout(self, function, timeout):
        with self._lock:
            idle = self._idle.get(function)
            conn = idle.pop() if idle else None
        if conn is None:
            return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout), False
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def _checkin(self, function, conn):
        with self._lock:
            idle = self._idle.setdefault(function, [])
            if len(idle) < self.max_in_flight:
                idle.append(conn)
                return
        conn.close()


# --------------------------------------------------------------------------
# Requests into payload 2.0 events, function answers into HTTP.

TEXT_TYPES = {"application/x-www-form-urlencoded", "application/javascript"}


def is_textual(content_type):
    """Whether API Gateway passes a body of this type as text."""
    if not content_type:
        return True
    mt = content_type.split(";", 1)[0].strip().lower()
    _, _, sub = mt.partition("/")
    return (mt.startswith("text/") or mt in TEXT_TYPES or sub in ("json", "xml")
            or sub.endswith("+json") or sub.endswith("+xml"))


@dataclass
class Request:
    method: str
    raw_path: str
    raw_query: str
    headers: dict  # lower-cased names, repeated headers joined with ","
    cookies: list
    query: dict  # decoded, repeated keys joined with ","
    body: bytes
    source_ip: str
    request_id: str
    epoch: float


def request_context(req, route):
    return {
        "accountId": ACCOUNT_ID, "apiId": route.api.api_id, "domainName": DOMAIN_NAME,
        "domainPrefix": DOMAIN_NAME.split(".")[0],
        "http": {"method": req.method, "path": req.raw_path, "protocol": "HTTP/1.1",
                 "sourceIp": req.source_ip, "userAgent": req.headers.get("user-agent", "")},
        "requestId": req.request_id, "routeKey": route.route_key, "stage": STAGE,
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(req.epoch)),
        "timeEpoch": int(req.epoch * 1000),
    }


def base_event(req, route, params):
    """The fields the integration and Lambda authorizer events share."""
    event = {"version": "2.0", "routeKey": route.route_key, "rawPath": req.raw_path,
             "rawQueryString": req.raw_query}
    if req.cookies:
        event["cookies"] = req.cookies
    event["headers"] = req.headers
    if req.query:
        event["queryStringParameters"] = req.query
    event["requestContext"] = request_context(req, route)
    if params:
        event["pathParameters"] = params
    if route.api.stage_variables:
        event["stageVariables"] = dict(route.api.stage_variables)
    return event


def integration_event(req, route, params, authorizer_context):
    event = base_event(req, route, params)
    if authorizer_context is not None:
        event["requestContext"]["authorizer"] = authorizer_context
    if req.body:
        ctype = req.headers.get("content-type")
        try:
            text = req.body.decode("utf-8") if is_textual(ctype) else None
        except UnicodeDecodeError:
            text = None
        if text is None:
            event["body"], event["isBase64Encoded"] = base64.b64encode(req.body).decode(), True
        else:
            event["body"], event["isBase64Encoded"] = text, False
    else:
        event["isBase64Encoded"] = False
    return event


class Malformed(Exception):
    """A function answer API Gateway would not accept (it answers 500)."""


HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _header_text(name, value):
    """A header value of the function's answer as text (never logged: it
    may be a session cookie)."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    try:
        if "\r" in value or "\n" in value:
            raise ValueError
        value.encode("latin-1")
    except (TypeError, ValueError):
        raise Malformed(f"the value of header {name!r}") from None
    return value


def _typed(result, key, kind):
    value = result.get(key)
    if value is None:
        return kind()
    if not isinstance(value, kind):
        raise Malformed(f"{key} is not a {kind.__name__}")
    return value


def map_response(payload):
    """(status, [(name, value)], body bytes) for a payload 2.0 answer."""
    try:
        result = json.loads(payload)
    except ValueError:
        raise Malformed("not JSON") from None
    if not (isinstance(result, dict) and "statusCode" in result):
        # API Gateway's inference: the whole answer is the JSON body.
        body = result if isinstance(result, str) else payload.decode("utf-8").strip()
        return 200, [("content-type", "application/json")], body.encode()
    status = result["statusCode"]
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
        raise Malformed(f"statusCode {status!r}")
    headers, named = [], set()
    for name, value in _typed(result, "headers", dict).items():
        if not HEADER_NAME.fullmatch(name):
            raise Malformed(f"header name {name!r}")
        if name.lower() not in HOP_BY_HOP:
            headers.append((name, _header_text(name, value)))
            named.add(name.lower())
    for name, values in _typed(result, "multiValueHeaders", dict).items():
        if not HEADER_NAME.fullmatch(name) or not isinstance(values, list):
            raise Malformed(f"multiValueHeaders {name!r}")
        if name.lower() not in HOP_BY_HOP and name.lower() not in named:
            headers += [(name, _header_text(name, v)) for v in values]
    for cookie in _typed(result, "cookies", list):
        headers.append(("set-cookie", _header_text("set-cookie", cookie)))
    body = result.get("body")
    if body is None:
        body = b""
    elif not isinstance(body, str):
        raise Malformed("body is not a string")
    elif result.get("isBase64Encoded") is True:
        try:
            body = base64.b64decode(body, validate=True)
        except binascii.Error:
            raise Malformed("body is not base64") from None
    else:
        body = body.encode("utf-8")
    return status, headers, body


# --------------------------------------------------------------------------
# Authorization.

class Denied(Exception):
    """Refused before the integration: status, message, extra headers."""

    def __init__(self, status, message, headers=()):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, list(headers)


def unauthorized_jwt(description):
    # The shape of API Gateway's JWT refusals; never the token itself.
    challenge = f'Bearer scope="" error="invalid_token" error_description="{description}"'
    return Denied(401, "Unauthorized", [("www-authenticate", challenge)])


def identity_value(req, source):
    kind, name = source
    return req.headers.get(name) if kind == "header" else req.query.get(name)


def claim_text(value):
    """A claim as API Gateway passes it to the integration: a string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + " ".join(claim_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{claim_text(v)}" for k, v in sorted(value.items())) + "]"
    return "<nil>" if value is None else str(value)


def token_scopes(claims):
    """The scope (or scp) claim as a list; None when there is none."""
    raw = claims.get("scope", claims.get("scp"))
    if isinstance(raw, str):
        return [s for s in raw.split(" ") if s]
    if isinstance(raw, list):
        return [claim_text(s) for s in raw]
    return None


# The algorithms an HTTP API JWT authorizer accepts.
JWT_AUTHORIZER_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")


class IssuerKeys:
    """An issuer's signing keys found as API Gateway finds them: its
    `/.well-known/openid-configuration`, then the `jwks_uri` it names,
    fetched over HTTP and cached; a `kid` not in the cache refetches, at
    most once a minute per issuer."""

    REFRESH_SECONDS = 60

    def __init__(self):
        self.keys = {}  # issuer -> {kid: jwk}
        self.fetched = {}  # issuer -> monotonic time of the last fetch
        self.fetches = 0
        self.lock = threading.Lock()

    def get(self, issuer, kid):
        with self.lock:
            known = self.keys.get(issuer, {})
            last = self.fetched.get(issuer)
            if kid not in known and (last is None or time.monotonic() - last >= self.REFRESH_SECONDS):
                self.fetched[issuer] = time.monotonic()
                try:
                    known = self.keys[issuer] = self.fetch(issuer)
                except (OSError, ValueError, KeyError) as e:
                    print(f"local_gateway: the keys of {issuer}: {e}", file=sys.stderr)
            return known.get(kid)

    def fetch(self, issuer):
        self.fetches += 1
        discovery = self.read(issuer.rstrip("/") + "/.well-known/openid-configuration")
        if discovery.get("issuer") != issuer:
            raise ValueError("the discovery document names another issuer")
        jwks = self.read(discovery["jwks_uri"])
        return {k["kid"]: k for k in jwks.get("keys", []) if "kid" in k}

    @staticmethod
    def read(url):
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())


ISSUER_KEYS = IssuerKeys()


def signing_key(authorizer, key, header):
    """The key that verifies a token of `header` for this authorizer, and
    its algorithm: the development issuer's own key, or one from the
    issuer's published keys; raises Denied."""
    alg = header.get("alg")
    if alg not in JWT_AUTHORIZER_ALGORITHMS:
        raise unauthorized_jwt(f"the signing method of the token is not supported: {alg}")
    if authorizer.issuer == dev_issuer.ISSUER:
        if alg != dev_issuer.ALGORITHM:
            raise unauthorized_jwt("the signing method of the token is not RS256")
        if header.get("kid") != dev_issuer.KEY_ID:
            raise unauthorized_jwt("no signing key matches the kid of the token")
        return key, alg
    jwk = ISSUER_KEYS.get(authorizer.issuer, header.get("kid"))
    if jwk is None or jwk.get("alg", alg) != alg:
        raise unauthorized_jwt("no signing key matches the kid of the token")
    return jwt.PyJWK(jwk).key, alg


def verify_jwt(authorizer, key, req):
    """The verified claims of the route's bearer token; raises Denied."""
    credential = identity_value(req, authorizer.source)
    if not credential:
        raise unauthorized_jwt("the token is missing")
    token = credential[7:].strip() if credential[:7].lower() == "bearer " else credential.strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        raise unauthorized_jwt("the token is not a valid JWT") from None
    key, alg = signing_key(authorizer, key, header)
    try:
        claims = jwt.decode(token, key, algorithms=[alg], issuer=authorizer.issuer,
                            leeway=0, options={"require": ["exp", "iss"], "verify_aud": False})
    except jwt.ExpiredSignatureError:
        raise unauthorized_jwt("the token has expired") from None
    except jwt.ImmatureSignatureError:
        raise unauthorized_jwt("the token is not valid yet") from None
    except jwt.InvalidIssuerError:
        raise unauthorized_jwt("the token does not have a valid issuer") from None
    except jwt.InvalidSignatureError:
        raise unauthorized_jwt("the token signature is invalid") from None
    except jwt.MissingRequiredClaimError as e:
        raise unauthorized_jwt(f"the token has no {e.claim} claim") from None
    except jwt.InvalidTokenError:
        raise unauthorized_jwt("the token is invalid") from None
    # aud when present, else client_id, must be one of the audiences.
    aud = claims.get("aud", claims.get("client_id"))
    auds = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a in authorizer.audiences for a in auds):
        raise unauthorized_jwt("the token does not have a valid audience")
    return claims


def jwt_context(authorizer, key, req, route):
    """requestContext.authorizer of a JWT route; raises Denied."""
    owner = req.headers.get("x-owner", "").strip()
    if owner:  # the development shorthand: no token, this subject
        return {"jwt": {"claims": {"sub": owner}, "scopes": None}}
    claims = verify_jwt(authorizer, key, req)
    scopes = token_scopes(claims)
    if route.scopes and not set(route.scopes) & set(scopes or []):
        wanted = " ".join(route.scopes)
        raise Denied(403, "Forbidden", [("www-authenticate", f'Bearer scope="{wanted}" '
                                         f'error="insufficient_scope" error_description='
                                         f'"the token does not have the required scopes"')])
    return {"jwt": {"claims": {k: claim_text(v) for k, v in claims.items()}, "scopes": scopes}}


def _arn_pattern(pattern):
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c)
                              for c in pattern), re.S)


@dataclass
class Verdict:
    """A Lambda authorizer's well-formed answer, cached as given: a simple
    response's flag, or an IAM policy evaluated against each route ARN."""
    allowed: bool = None
    statements: list = None
    context: dict = None

    def allows(self, route_arn):
        if self.statements is None:
            return self.allowed
        matching = [s for s in self.statements if any(
            _arn_pattern(r).fullmatch(route_arn) for r in s["resources"]) and any(
            a in ("*", "execute-api:*", "execute-api:Invoke") for a in s["actions"])]
        if any(s["effect"] == "Deny" for s in matching):
            return False
        return any(s["effect"] == "Allow" for s in matching)


def parse_verdict(payload, simple):
    """The authorizer's answer; raises Malformed (API Gateway answers 500)."""
    try:
        answer = json.loads(payload)
    except ValueError:
        raise Malformed("authorizer answer is not JSON") from None
    if not isinstance(answer, dict):
        raise Malformed("authorizer answer is not an object")
    context = answer.get("context")
    context = {} if context is None else context
    if not isinstance(context, dict) or not all(
            isinstance(v, (str, int, float)) for v in context.values()):
        raise Malformed("authorizer context is not a map of strings, numbers and booleans")
    if simple:
        if not isinstance(answer.get("isAuthorized"), bool):
            raise Malformed("isAuthorized is not a boolean")
        return Verdict(allowed=answer["isAuthorized"], context=context)
    doc = answer.get("policyDocument")
    statements = doc.get("Statement") if isinstance(doc, dict) else None
    statements = [statements] if isinstance(statements, dict) else statements
    if not isinstance(statements, list):
        raise Malformed("policyDocument.Statement is missing")
    parsed = []
    for s in statements:
        if not isinstance(s, dict) or s.get("Effect") not in ("Allow", "Deny"):
            raise Malformed("policy statement Effect")
        parsed.append({"effect": s["Effect"], "actions": _strings(s.get("Action")),
                       "resources": _strings(s.get("Resource"))})
    return Verdict(statements=parsed, context=context)


def _strings(value):
    """A policy's Action or Resource: one string or a list of them."""
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise Malformed("a policy statement's Action or Resource")
    return value


class AuthorizerCache:
    """Lambda authorizer answers by (authorizer, identity values), for the
    authorizer's TTL; allows and denies alike, never errors."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = {}

    def get(self, key):
        with self._lock:
            hit = self._entries.get(key)
            if hit and hit[0] > time.monotonic():
                return hit[1]
            self._entries.pop(key, None)
            return None

    def put(self, key, verdict, ttl):
        with self._lock:
            now = time.monotonic()
            if len(self._entries) > 10000:  # drop the expired, keep memory bounded
                self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            self._entries[key] = (now + ttl, verdict)


def lambda_context(authorizer, req, route, params, invoker, cache):
    """requestContext.authorizer of a Lambda-authorized route; raises Denied
    or InvokeError."""
    values = [identity_value(req, s) for s in authorizer.sources]
    if not all(values):  # API Gateway refuses without calling the function
        raise Denied(401, "Unauthorized")
    route_arn = (f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{route.api.api_id}/{STAGE}/"
                 f"{req.method}{req.raw_path}")
    cache_key = (authorizer.key, tuple(values))
    verdict = cache.get(cache_key) if authorizer.ttl > 0 else None
    if verdict is None:
        event = {"version": "2.0", "type": "REQUEST", "routeArn": route_arn,
                 "identitySource": values, **base_event(req, route, params)}
        # Counted by the tests: which routes cost an authorizer invocation.
        print(f"authorizer {authorizer.function} invoked for {route.route_key}",
              file=sys.stderr, flush=True)
        try:
            payload = invoker.invoke(authorizer.function, event, route.timeout)
        except InvokeTimeout:
            raise InvokeError("authorizer timed out") from None
        try:
            verdict = parse_verdict(payload, authorizer.simple)
        except Malformed as e:
            raise InvokeError(f"{authorizer.function}: {e}") from None
        if authorizer.ttl > 0:
            cache.put(cache_key, verdict, authorizer.ttl)
    if not verdict.allows(route_arn):
        raise Denied(403, "Forbidden")
    return {"lambda": verdict.context}


# --------------------------------------------------------------------------
# The HTTP server.

class Gateway(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-gateway"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is closed after this

    # Set by main(): the RouteTable, Invoker, AuthorizerCache, issuer public
    # key, and the issuer's sign-in for the console (dev_issuer.LoginFlow).
    routes = invoker = cache = issuer_key = login_flow = None

    def handle_any(self):
        started = time.monotonic()
        self._request_id = base64.b64encode(os.urandom(11)).decode()  # AWS-like, e.g. Mc7UVioPPHcEKPA=
        raw_path = "?"
        try:
            target = self.path
            if not target.startswith("/"):  # absolute-form: drop scheme and authority
                target = "/" + target.split("://", 1)[-1].partition("/")[2]
            raw_path, _, raw_query = target.partition("?")
            raw_query = raw_query.partition("#")[0]
            status = self.serve(raw_path, raw_query)
        except (ConnectionError, TimeoutError):
            self.close_connection = True  # the client went away or stalled
            status = "-"
        except Exception as e:  # a bug here: answer, and say so
            print(f"local_gateway: {self.command} {_printable(raw_path)}: {e!r}", file=sys.stderr)
            self.close_connection = True
            status = self.reply(500, "Internal Server Error")
        print(f"{self.command} {_printable(raw_path)} {status} "
              f"{(time.monotonic() - started) * 1000:.1f}ms", file=sys.stderr, flush=True)

    def serve(self, raw_path, raw_query):
        body = self.read_body()
        if isinstance(body, int):
            return body
        if raw_path.startswith(dev_issuer.FLOW_PATH + "/") and self.login_flow is not None:
            return self.sign_in(raw_path, raw_query, body)
        route, params = self.routes.find(self.command, raw_path)
        if route is None:
            return self.reply(404, "Not Found")
        req = self.build_request(raw_path, raw_query, body)
        try:
            context = None
            if isinstance(route.authorizer, JwtAuthorizer):
                context = jwt_context(route.authorizer, self.issuer_key, req, route)
            elif isinstance(route.authorizer, LambdaAuthorizer):
                context = lambda_context(route.authorizer, req, route, params, self.invoker, self.cache)
            event = integration_event(req, route, params, context)
            payload = self.invoker.invoke(route.function, event, route.timeout)
            status, headers, out = map_response(payload)
        except Denied as e:
            return self.reply(e.status, e.message, e.headers)
        except InvokeError as e:
            print(f"local_gateway: {route.route_key}: {e}", file=sys.stderr)
            return self.reply(e.status, e.message)
        except Malformed as e:
            print(f"local_gateway: {route.route_key}: {route.function} answered badly: {e}",
                  file=sys.stderr)
            return self.reply(500, "Internal Server Error")
        return self.send(status, headers, out)

    def sign_in(self, raw_path, raw_query, body):
        """The development issuer's sign-in for the web console (never
        deployed: a deployment signs in with its own issuer)."""
        form = {}
        if self.command == "POST":
            form = dict(parse_qsl(body.decode("utf-8", "replace")))
        jar = http.cookies.SimpleCookie()
        try:
            jar.load(self.headers.get("cookie", ""))
        except http.cookies.CookieError:
            pass
        cookies = {k: m.value for k, m in jar.items()}
        status, headers, out = self.login_flow.handle(self.command, raw_path, raw_query, form, cookies)
        return self.send(status, headers, out)

    def read_body(self):
        """The request body, or the status already answered."""
        coding = self.headers.get("transfer-encoding")
        if coding:
            if coding.split(",")[-1].strip().lower() != "chunked":
                self.close_connection = True
                return self.reply(400, "Bad Request")
            return self.read_chunked()
        length = self.headers.get("content-length")
        if length is None:
            return b""
        if not length.strip().isdigit():
            self.close_connection = True
            return self.reply(400, "Bad Request")
        length = int(length)
        if length > PAYLOAD_LIMIT:
            self.close_connection = True  # the unread body is still on the wire
            return self.reply(413, "Request Entity Too Large")
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return self.reply(400, "Bad Request")
        return body

    def read_chunked(self):
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                return self.reply(400, "Bad Request")
            if size == 0:
                while self.rfile.readline(65537).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > PAYLOAD_LIMIT:
                self.close_connection = True
                return self.reply(413, "Request Entity Too Large")
            chunk = self.rfile.read(size)
            self.rfile.readline(3)  # the CRLF after the chunk
            if len(chunk) < size:
                self.close_connection = True
                return self.reply(400, "Bad Request")
            chunks.append(chunk)

    def build_request(self, raw_path, raw_query, body):
        headers, cookies = {}, []
        for name, value in self.headers.items():
            name = name.lower()
            if name == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
                continue
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        peer = self.client_address[0]
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {peer}" if forwarded else peer
        headers["x-forwarded-port"] = str(self.server.server_address[1])
        headers["x-forwarded-proto"] = "http"
        query = {}
        for k, v in parse_qsl(raw_query, keep_blank_values=True):
            query[k] = f"{query[k]},{v}" if k in query else v
        return Request(self.command, raw_path, raw_query, headers, cookies, query, body,
                       peer, self._request_id, time.time())

    def reply(self, status, message, headers=()):
        """An API Gateway error: {"message": ...} as JSON."""
        body = json.dumps({"message": message}, separators=(",", ":")).encode()
        return self.send(status, [("content-type", "application/json"), *headers], body)

    def send(self, status, headers, body):
        if status in (204, 304):
            body = b""
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.send_header("apigw-requestid", self._request_id)
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def __getattr__(self, name):
        # Every method, QUERY and PROPFIND included, goes through routing.
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)

    def log_request(self, code="-", size="-"):
        pass  # handle_any logs each request, without headers or query

    def send_error(self, code, message=None, explain=None):
        # The standard error page quotes the request line, whose query may
        # hold a credential: answer as API Gateway does, and log the status only.
        self._request_id = base64.b64encode(os.urandom(11)).decode()
        self.close_connection = True
        print(f"local_gateway: unparseable request: {code}", file=sys.stderr)
        phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Bad Request"
        self.reply(code, phrase)

    def log_message(self, format, *args):
        print(f"local_gateway: {_printable(format % args)}", file=sys.stderr)


def _printable(text, limit=300):
    text = "".join(c if c.isprintable() else "?" for c in str(text))
    return text if len(text) <= limit else text[:limit] + "..."


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # bursts wait in the backlog, not refused
    allow_reuse_address = True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True, help="where the gateway listens (127.0.0.1)")
    p.add_argument("--invoke-port", type=int, required=True,
                   help="the Lambda Invoke API of cargo lambda watch (127.0.0.1)")
    p.add_argument("--template", action="append", required=True, metavar="PATH[:STACK]",
                   help="a SAM template (repeatable); stacks tollgate, tollgate-demo, ... by default")
    p.add_argument("--issuer-key", required=True,
                   help="the local issuer's RSA key (dev_issuer.py init; created if missing)")
    p.add_argument("--parameter", action="append", default=[], metavar="NAME=VALUE",
                   help="overrides a template parameter's Default (repeatable)")
    p.add_argument("--max-in-flight", type=int, default=8, help="invocations at once per function")
    p.add_argument("--queue-timeout", type=float, default=30.0,
                   help="seconds a request waits for a slot before 503")
    p.add_argument("--invoke-timeout", type=float, default=30.0,
                   help="seconds an invocation may take before 504")
    args = p.parse_args(argv)
    params = {}
    for item in args.parameter:
        name, sep, value = item.partition("=")
        if not sep or not name:
            p.error(f"--parameter {item!r}: expected NAME=VALUE")
        params[name] = value
    templates = [parse_template_arg(t, i) for i, t in enumerate(args.template)]
    try:
        routes = load_routes(templates, params, args.invoke_timeout)
    except (TemplateError, OSError, yaml.YAMLError) as e:
        print(f"local_gateway: error: {e}", file=sys.stderr)
        return 2
    dev_issuer.init_key(args.issuer_key)
    Gateway.routes = routes
    Gateway.invoker = Invoker(args.invoke_port, args.max_in_flight, args.queue_timeout)
    Gateway.cache = AuthorizerCache()
    Gateway.issuer_key = dev_issuer.public_key(args.issuer_key)
    Gateway.login_flow = dev_issuer.LoginFlow(args.issuer_key)
    server = Server(("127.0.0.1", args.port), Gateway)
    print(f"local_gateway: http://127.0.0.1:{server.server_address[1]} -> functions on "
          f"127.0.0.1:{args.invoke_port}", file=sys.stderr)
    for r in routes.routes:
        auth = ("open" if r.authorizer is None else
                f"JWT {r.authorizer.key[2]}" if isinstance(r.authorizer, JwtAuthorizer) else
                f"Lambda {r.authorizer.key[2]} ({r.authorizer.function}, ttl {r.authorizer.ttl}s)")
        print(f"  {r.route_key:<40} -> {r.function:<10} {auth}", file=sys.stderr)
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
