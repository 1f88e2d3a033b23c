"""The nested parameters of the classifier: ``final_estimator__*`` and the
skorch-style ``callbacks__<name>`` / ``callbacks__<name>__<param>``."""

from __future__ import annotations

from ._feature_mode import default_final_estimator

__all__ = ["NestedParamsMixin"]


class NestedParamsMixin:
    """``get_params``/``set_params`` that read and write nested parameters.

    For an estimator with ``final_estimator`` and ``callbacks`` parameters;
    placed before :class:`~sklearn.base.BaseEstimator` in the bases.
    """

    def get_params(self, deep=True):
        """Get parameters, with those of the named callbacks when ``deep``.

        As in skorch, ``deep=True`` adds ``callbacks__<name>`` (the callback)
        and ``callbacks__<name>__<param>`` for each of ``callbacks``; an
        unnamed callback is named after its class. These are exactly the
        names :meth:`set_params` accepts.

        Parameters
        ----------
        deep : bool, default=True
            Also return the parameters of ``final_estimator`` and of the
            callbacks.

        Returns
        -------
        params : dict
        """
        params = super().get_params(deep=deep)
        if deep:
            for name, callback in self._named_callbacks(strict=False):
                params[f"callbacks__{name}"] = callback
                if hasattr(callback, "get_params"):
                    for key, value in callback.get_params().items():
                        params[f"callbacks__{name}__{key}"] = value
        return params

    def set_params(self, **params):
        """Set parameters, including nested ones of the default estimator.

        ``final_estimator__C=...`` works while ``final_estimator`` is None:
        the default ``LogisticRegression(C=0.01, max_iter=1000)`` is made explicit
        first. ``callbacks__<name>=callback`` replaces a named callback (None
        removes it) and ``callbacks__<name>__<param>`` sets one of its
        parameters, as in skorch.

        Parameters
        ----------
        **params : dict
            Parameter names as returned by ``get_params(deep=True)``.

        Returns
        -------
        self : PretrainedCNNClassifier
        """
        nested_final = [k for k in params if k.startswith("final_estimator__")]
        if nested_final and params.get("final_estimator", self.final_estimator) is None:
            params = dict(params)
            params.setdefault("final_estimator", default_final_estimator())
            if params["final_estimator"] is None:
                params["final_estimator"] = default_final_estimator()
        callback_params = {
            k: params.pop(k) for k in list(params) if k.startswith("callbacks__")
        }
        super().set_params(**params)
        # whole callbacks first, then the parameters of the callbacks now set
        replaced = {k: v for k, v in callback_params.items() if k.count("__") == 1}
        for key, value in replaced.items():
            self._replace_callback(key, value)
        for key, value in callback_params.items():
            if key in replaced:
                continue
            _, name, param = key.split("__", 2)
            callback = dict(self._named_callbacks()).get(name)
            if callback is None:
                raise ValueError(
                    f"No callback named {name!r} for {key!r}; named callbacks: "
                    f"{[n for n, _ in self._named_callbacks()]}."
                )
            if not hasattr(callback, "set_params"):
                raise ValueError(
                    f"Cannot set {key!r}: the callback {name!r} "
                    f"({type(callback).__name__}) has no set_params; replace it "
                    f"with callbacks__{name}=<callback> instead."
                )
            callback.set_params(**{param: value})
        return self

    def _replace_callback(self, key, value):
        name = key.split("__", 1)[1]
        named = self._named_callbacks()
        if name not in dict(named):
            raise ValueError(
                f"No callback named {name!r} for {key!r}; named callbacks: "
                f"{[n for n, _ in named]}. Add a callback with the callbacks "
                "parameter, e.g. callbacks=[(name, callback)]."
            )
        callbacks = []
        for item, (item_name, _) in zip(self.callbacks, named):
            if item_name != name:
                callbacks.append(item)
            elif value is not None:
                callbacks.append((name, value) if isinstance(item, tuple) else value)
        self.callbacks = callbacks

    def _named_callbacks(self, strict=True):
        """``(name, callback)`` for each of ``callbacks``; unnamed ones are
        named after their class. With ``strict=False``, malformed entries are
        skipped instead of refused (``get_params`` must not fail)."""
        if not isinstance(self.callbacks, (list, tuple)):
            if strict and self.callbacks is not None:
                raise ValueError(
                    "callbacks must be None or a list of skorch callbacks or "
                    f"(name, callback) tuples, got {self.callbacks!r}."
                )
            return []
        named = []
        for i, item in enumerate(self.callbacks):
            if isinstance(item, tuple) and len(item) == 2:
                name, callback = item
            else:
                name, callback = type(item).__name__, item
            # fit clones each callback: it needs get_params, as skorch's have
            if (
                isinstance(name, str)
                and hasattr(callback, "get_params")
                and not isinstance(callback, type)
            ):
                named.append((name, callback))
            elif strict:
                raise ValueError(
                    f"callbacks[{i}] must be a skorch callback or a (name, "
                    f"callback) tuple, got {item!r}."
                )
        return named
