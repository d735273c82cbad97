"""Console URLs for keys and the search across vaults and keys."""

from django.urls import path

from .views import overview, search

urlpatterns = [
    path("", overview.overview, name="overview"),
    path("search/", search.search, name="search"),
]
